"""The sound classifier on the device: the simulated microphone replays real speech recordings (a WAV folder of
Debian's pocketsphinx-testdata), the sound meter hands each chunk to the classifier, and its windows' features are
bit-identical to the shared extractor's over the same files; a sound model (loaded from flash by the model
manager: the classifier is the device as it sees it for the sound model) classifies every window, publishes
classes and change events, and the frames and window statistics allocate nothing."""

import array
import hashlib
import json
import os

import asyncio

from devtest import FakeClock, StubConfig, quiet_log, tmpdir, until
from sensorbox.device.analysis import soundclass
from sensorbox.device.log import Bus
from sensorbox.device.sensors.sampler import Sensor
from sensorbox.device.sensors.sim_wav import WavMicrophone
from sensorbox.device.analysis.soundmeter import SoundMeter
from sensorbox.shared import config_schema, wav
from sensorbox.shared import soundfeatures as sf

CARDS = "/usr/share/pocketsphinx/test/data/cards"
# The device's side fits the default 96wK; the test's own reference extractor and the ~70 windows it records
# beside it need more (at 96wK the reference's buffers found no 1 KB block now and then).
HEAPSIZE = "128wK"


class _Store:
    clip = None  # (Store's: audio clips off)

    def __init__(self):
        self.rows = []

    def class_ids(self, names):
        return array.array("h", range(len(names)))

    def resource(self, name):
        self.made = name  # (the real store makes its soundclass resource when the classifier starts)

    def on_bus(self, topic, t, v):
        self.rows.append((topic, t, v))


class _Platform:
    def __init__(self, data):
        self.data_dir = data


class _Device:
    def __init__(self, clock, **cfg):
        self.log = quiet_log()
        self.config = StubConfig(**cfg)
        self.bus = Bus(self.log)
        self.store = _Store()
        self.platform = _Platform(tmpdir())
        self.sensors = {"mic": Sensor("mic", lambda: WavMicrophone(self.config.get("sim.mic_wav"), self.config,
                                                                   clock), self.log, 1,
                                      config_schema.MIC_RING_FRAMES)}
        self.soundmeter = SoundMeter(self)


def _reference(seconds):
    # the shared extractor over the files in name order, as one stream: every window's features and end sample
    ex = sf.SoundFeatures(16000)
    got = []
    pos = [0]
    ex.on_window = lambda after: got.append((pos[0] - after, array.array("h", ex.out)))
    chunk = array.array("h", bytes(512))
    want = seconds * 16000
    for name in sorted(os.listdir(CARDS)):
        if not name.endswith(".wav"):
            continue
        with open(CARDS + "/" + name, "rb") as f:
            _, _, _, off, nbytes = wav.parse(f.read(wav.HEAD))
            f.seek(off)
            left = nbytes >> 1
            while left > 0 and pos[0] < want:
                k = f.readinto(chunk) >> 1
                k = min(k, left, want - pos[0])
                if k <= 0:
                    break
                pos[0] += k
                left -= k
                ex.process(chunk, k)
    return got


def _model(root, threshold):
    # one tree on level_mean: "quiet" below the threshold, "loud" from it (emlearn's CSV: go left if x < t)
    csv = "f,{}\r\nc,2\r\nlb,0\r\nl,0\r\nl,1\r\nr,0\r\nn,0,{},-1,-2\r\n".format(len(sf.names()), threshold).encode()
    meta = {"format": 1, "kind": "trees", "sensor": "sound", "feature_version": sf.FEATURE_VERSION,
            "features": list(sf.names()), "channels": 1, "window": sf.WINDOW, "hop": sf.WINDOW_HOP, "rate_hz": 16000,
            "classes": ["quiet", "loud"], "trees": 1, "nodes": 1, "leaves": 2, "csv_bytes": len(csv),
            "csv_sha256": "".join("{:02x}".format(b) for b in hashlib.sha256(csv).digest())}
    d = root + "/sound"
    for p in (d, d + "/models", d + "/models/active"):
        try:
            os.mkdir(p)
        except OSError:
            pass
    with open(d + "/models/active/model.csv", "wb") as f:
        f.write(csv)
    with open(d + "/models/active/meta.json", "w") as f:
        f.write(json.dumps(meta))


t0 = 1700000000000


async def test_device_windows_equal_the_shared_extractor_on_real_speech_and_classes_follow_the_model():
    clock = FakeClock(t0)
    _model(tmpdir(), -1000)
    dev = _Device(clock, sim__mic_wav=CARDS, sound__classify=True, sound__class_smooth=1,
                  sound__class_unknown_permille=0)
    classes = []
    events = []
    dev.bus.subscribe("soundclass", lambda topic, t, v: classes.append((t, v)))
    dev.bus.subscribe("events", lambda topic, t, v: events.append((t, v)))
    seen = []
    orig = {}

    def hook():
        # record the classifier's windows as they are made (its features' on_window, wrapped)
        c = soundclass.running(dev)
        f = c.features
        if f is not None and "w" not in orig:
            orig["w"] = f.on_window

            def rec(after):
                seen.append(array.array("h", f.out))
                orig["w"](after)

            f.on_window = rec
        return True

    sensor = dev.sensors["mic"]
    sm = dev.soundmeter
    tasks = [asyncio.create_task(sensor.run()), asyncio.create_task(sm.run())]
    await until(lambda: sm.meter is not None and sensor.pulled and soundclass.running(dev) is not None, 5000)
    hook()
    c = soundclass.running(dev)
    assert c.ml.model is not None and c.ml.model.classes == ["quiet", "loud"], c.ml.error
    assert dev.store.made == "soundclass"
    c = None
    for _ in range(45):  # 9 s of sound, 200 ms at a time: the five files (9.7 s) are one stream
        clock.advance(200)
        await until(lambda: sm._last + 1 == (clock.t - t0) * 16, 5000)
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(0)
    st = sm.status()["classes"]
    import gc

    tasks = sensor = sm = orig = None
    dev.sensors = dev.soundmeter = None  # the device's buffers go before the reference's are made
    gc.collect()
    ref = _reference(9)
    assert len(seen) == len(ref) == (9 * 16000 - 4352) // 2048 + 1, (len(seen), len(ref))
    for i in range(len(ref)):
        assert seen[i] == ref[i][1], i  # bit-identical: driver, ring, meter chunks do not change a window
    # every window classified by the model: "loud" iff level_mean >= -1000, at its last sample's time; the store
    # (subscribed while the classifier runs) got each
    assert len(classes) == len(ref) and [r[1:] for r in dev.store.rows if r[0] == "soundclass"] == classes
    for i in range(len(ref)):
        end, feats = ref[i]
        t, (cid, conf) = classes[i]
        assert cid == (1 if feats[0] >= -1000 else 0) and conf == 1000, (i, cid, feats[0])
        assert t == t0 + (end - 1) * 1000 // 16000, (i, t, end)
    changes = [v for _, v in events if v["type"] == "sound_change"]
    assert changes and changes[0]["from"] == "unknown"
    assert len(changes) == 1 + sum(1 for i in range(1, len(classes)) if classes[i][1][0] != classes[i - 1][1][0])
    assert st["windows"] == len(ref) and st["prediction"]["class"] in ("quiet", "loud") and st["reason"] is None


async def test_no_classifier_when_off_and_the_model_api_slot():
    clock = FakeClock(t0)
    dev = _Device(clock, sim__mic_wav=CARDS)
    sensor = dev.sensors["mic"]
    tasks = [asyncio.create_task(sensor.run()), asyncio.create_task(dev.soundmeter.run())]
    await until(lambda: dev.soundmeter.meter is not None, 5000)
    assert soundclass.running(dev) is None and dev.soundmeter.status()["classes"] is None
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(0)
    # the model manager through the slot: no sound model yet; an activity model is refused as the sound model
    import gc

    tasks = sensor = None
    dev.sensors = None
    gc.collect()
    from sensorbox.device.analysis import models

    s = soundclass.slot(dev)
    assert models.info(s)["active"] is None and s.platform.data_dir == tmpdir() + "/sound"
    # no sound model on flash: none is loaded, which is no error (the sound model's place has no bundled default)
    s.ml.error = None  # (as the classifier that sound.classify makes)
    await s.load()
    assert s.ml.model is None and "none on the device" in s.ml.error, s.ml.error
    assert dev.log.entries(0, 40) == [], dev.log.entries()
    with open("models/default/meta.json") as f:
        body = f.read()
    try:
        models.stage_meta(s, body)
        raise AssertionError("an accelerometer model was staged as the sound model")
    except models.ModelError as e:
        assert e.field == "sensor", e.reason


def test_frames_and_windows_allocate_nothing_in_the_classifier():
    import micropython

    from sensorbox.device.sensors.ring import SampleRing

    clock = FakeClock(t0)
    dev = _Device(clock)
    c = soundclass.slot(dev)  # (a classifier with no model: classification off)
    ring = SampleRing(1, 512, 16000)
    c.start(ring)
    x = array.array("h", bytes(512))
    for i in range(256):
        x[i] = (i * 37) % 2000 - 1000
    c.feed(x, 256, 255)
    micropython.heap_lock()
    try:
        for k in range(40):  # 40 chunks: 40 frames, 4 windows (no model: counted, not classified)
            c.feed(x, 256, 256 * (k + 2) - 1)
    finally:
        micropython.heap_unlock()
    assert c.windows == 4 and c.features.windows == 4, c.windows


def test_the_soundclass_resource_is_made_on_first_use_with_its_budget():
    # the store holds no RAM for sound classes until the classifier first starts; then it gets its configured
    # budget, and after a restart it is made again from its directory
    from storetest import T0, make, read_all

    root = tmpdir("s")
    st = make(root, store__soundclass_kb=8)
    assert "soundclass" not in st.by_name
    st.on_bus("soundclass", T0, (1, 900))  # (not made yet: not stored)
    r = st.resource("soundclass")
    assert r is st.by_name["soundclass"] and r.budget == 8 * 1024 and r.seg_max == 2048
    st.on_bus("soundclass", T0 + 128, (1, 900))
    st.on_bus("soundclass", T0 + 256, (-1, 300))
    st.flush()
    st.configure(StubConfig(store__soundclass_kb=4))
    assert r.budget == 4 * 1024
    st.close()
    st = r = None
    st = make(root, store__soundclass_kb=16)  # a restart
    assert st.by_name["soundclass"].budget == 16 * 1024
    rows = read_all(st, "soundclass", columns="t,class,confidence")[1]
    assert rows == [[T0 + 128, 1, 900], [T0 + 256, -1, 300]], rows


def test_a_start_short_of_memory_says_so_and_is_tried_again_while_the_meter_goes_on():
    # The classifier's features (frame buffers, the 1 KB Hann window) are made when the stream starts: a late
    # start (sound.classify turned on after hours) on a cut-up heap once raised MemoryError out of the sound
    # meter's service, which restarted. Now the reason says so, feeding goes on without features, and the start
    # is tried again after soundclass._AGAIN chunks (250: a const, not a module attribute on MicroPython).
    import gc

    from devtest import cut_heap, largest_free
    from sensorbox.device.sensors.ring import SampleRing

    AGAIN = 250
    dev = _Device(FakeClock(t0))
    c = soundclass.slot(dev)
    ring = SampleRing(1, 512, 16000)
    x = array.array("h", bytes(512))
    gc.collect()
    held = cut_heap(400)
    try:
        assert largest_free() < 500
        c.start(ring)
        assert c.features is None and c.reason.startswith("short of memory for the sound features"), c.reason
        for k in range(10):
            c.feed(x, 256, 256 * (k + 1) - 1)  # (no features: nothing to do, nothing raised)
        assert c.features is None
    finally:
        held.clear()
    held = None
    gc.collect()
    for k in range(AGAIN - 11):
        c.feed(x, 256, 256 * (k + 11) - 1)
    assert c.features is None  # (not before _AGAIN chunks)
    c.feed(x, 256, 256 * AGAIN - 1)
    assert c.features is not None and not c.reason.startswith("short of memory"), c.reason
    for k in range(40):
        c.feed(x, 256, 256 * (AGAIN + k + 1) - 1)
    assert c.windows >= 3, c.windows
