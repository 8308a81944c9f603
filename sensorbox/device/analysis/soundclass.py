"""Sound classification on the microphone stream: the shared sound features (``sensorbox.shared.soundfeatures``),
the sound model (an emlearn tree ensemble trained with ``sensorbox train --sensor sound``), smoothing and an
"unknown" threshold, published like the activity predictions.

Loaded only while ``sound.classify`` is on (the sound meter imports it when it starts with the key on and drops
it when it starts with the key off): a device that does not classify sounds holds none of this in RAM. The meter
hands it each chunk it reads, before it A-weights the chunk in place (``feed``); per chunk and per 16 ms frame
nothing is allocated, per window (every 128 ms) a prediction is made and published:

- bus ``soundclass``: ``(class_id, confidence_permille)`` at the epoch ms of the window's last sample (the store
  keeps them as the resource ``soundclass``; class ids are the store's class table's, as for ``predictions``);
- bus ``events``: ``{"type": "sound_change", "from": name, "to": name, "confidence": permille}`` when the
  decided class changes (stored, sent live, over MQTT and webhooks as every event).

``sound.class_smooth`` windows of votes are summed before deciding; below ``sound.class_unknown_permille`` the
class is "unknown". The model lives in ``<data>/sound/models/{active,previous,staged}`` and is uploaded, activated
and rolled back through the model API with ``?sensor=sound`` (``sensorbox model push`` adds it for a model whose
meta.json says ``"sensor": "sound"``); ``sensorbox.device.analysis.models`` does the work for both: the classifier is
the device as it sees it for the sound model (``SoundClassifier``).

Names: this module, the features and their kernels are not warmed at boot (``boot.WARM_SKIP``); loading them
interns ~25 names then, into the ~60 the boot count leaves below the name pool's doubling (docs/heap.md "Interned
names"): so this module spells few names of its own.
"""

import array
import os

from micropython import const

from sensorbox.device import lazy
from sensorbox.device.analysis.pipeline import UNKNOWN, ModelSlot, classify
from sensorbox.shared.soundfeatures import BANDS, FEATURE_VERSION, WINDOW, WINDOW_HOP, SoundFeatures, names

_SELF = const("sensorbox.device.analysis.soundclass")
_AGAIN = const(250)  # chunks (of the meter's 256 samples: 4 s at 16 kHz) before a start short of memory is tried again


async def configure(meter):
    """The sound meter's classifier for ``sound.classify``: made once, its model loaded from flash (active, else
    previous), its rows to the store while it runs (the store's ``soundclass`` resource is made then:
    ``Store.resource``). When the key is off: None, and this module is unloaded."""
    d = meter.device
    c = meter._classifier
    if not d.config.get("sound.classify"):
        if c is not None:
            d.bus.unsubscribe("soundclass", c._sub)
        lazy.unload(_SELF)
        return None
    if c is None:
        c = SoundClassifier(d)
        d.store.resource("soundclass")
        d.bus.subscribe("soundclass", c._sub)  # stored as the resource soundclass
    if c.ml.model is None:
        await c.load()
    return c


def running(device):
    """The device's sound classifier while ``sound.classify`` is on, else None."""
    return device.soundmeter._classifier


class _Platform:
    # where models.py finds the sound model's directories: <data>/sound/models/...
    def __init__(self, data):
        self.data_dir = data
        self.www_dir = data + "/www"  # (its "default" model: <data>/sound/models/default, none unless put there)


def slot(device):
    """The place of the model API's ``?sensor=sound`` model: the running classifier (a bare one when off)."""
    c = device.soundmeter._classifier
    if c is None:
        c = SoundClassifier(device)
        c.ml.error = "sound.classify is off: the sound model on flash is loaded when it is turned on"
    return c


class SoundClassifier:
    """The classifier, and the device as ``sensorbox.device.analysis.models`` sees it for the sound model: ``ml``
    (its model's ``pipeline.ModelSlot``) and ``platform`` (the model directories under ``<data>/sound``) are its
    own, everything else is the device's (``__getattr__``)."""

    sensor = "sound"

    def __init__(self, device):
        self.device = device  # (first: __getattr__ reads it)
        data = device.platform.data_dir + "/" + self.sensor
        try:
            os.mkdir(data)
        except OSError:
            pass
        self.platform = _Platform(data)
        self.ml = ModelSlot()
        self.features = None  # SoundFeatures, made for the stream's rate and the model's window
        self.latest = None  # (t_ms, class index, confidence)
        self.label = UNKNOWN
        self.windows = 0
        self.reason = "starting"
        self._serial = 0
        self._hist = None
        self._nh = 0
        self._ring = None
        self._last = 0
        self._again = 0  # chunks until start tries again (short of memory for the features)
        self._sub = device.store.on_bus  # (configure: one bound method, which unsubscribe finds again)

    def __getattr__(self, name):  # (only what it has not itself: config, log, store, ...)
        return getattr(self.device, name)

    def check_meta(self, meta, m):
        """Raise ``m.ModelError`` (``m``: ``sensorbox.shared.model``) unless ``meta`` is a sound model this
        device can run: the sound features, windows of 2..64 frames, within ``ml.model_max_kb``
        (``models._compatible`` asks; here, not there, so that none of this is in RAM for the activity model)."""
        if isinstance(meta, dict) and meta.get("sensor") != self.sensor:
            raise m.ModelError("an accelerometer model cannot run as the sound model: push it without "
                               "?sensor=sound", "sensor")
        cols = m.check_meta(meta, FEATURE_VERSION, names(), 1, None, self.config.get("ml.model_max_kb") * 1024)
        if not (2 <= meta["window"] <= 64 and 1 <= meta["hop"] <= meta["window"]):
            raise m.ModelError("sound windows of 2..64 frames (hop 1..window), got {} and {}".format(
                meta["window"], meta["hop"]), "window")
        return cols

    async def load(self):
        """Load the sound model (active, else previous), yielding while it parses."""
        try:
            await lazy.load("sensorbox.device.analysis.models").boot(self)
        except ValueError:  # a model upload is loading one right now
            pass
        finally:
            lazy.unload("sensorbox.device.analysis.models")
        if self.ml.model is None and self.ml.error is None:
            self.ml.error = "none on the device: push one (sensorbox model push)"

    def start(self, ring):
        """A new stream (sampling (re)started) from ``ring``: the features start afresh at its rate."""
        self._ring = ring
        rate = ring.rate_hz
        m = self.ml.model
        window = m.window if m is not None else WINDOW
        hop = m.info["hop"] if m is not None else WINDOW_HOP
        f = self.features
        self._again = 0
        if f is None or f.rate_hz != rate or f.window != window or f.hop != hop:
            self.features = None
            try:
                f = SoundFeatures(rate, BANDS, window, hop)
            except ValueError as e:
                self.reason = str(e)
                return
            except MemoryError:  # (its buffers, the 1 KB Hann window among them: a heap cut up late may lack them)
                self._again = _AGAIN
                self.reason = "short of memory for the sound features: trying again in a few seconds"
                return
            f.on_window = self._window
            self.features = f
        f.reset()
        self._serial = 0  # smoothing afresh, sized by sound.class_smooth now
        self.reason = None if m is not None else "no sound model: " + str(self.ml.error)

    def feed(self, x, n, last):
        """The meter's chunk x[:n] (not yet weighted); ``last``: the sequence number of its last sample."""
        f = self.features
        if f is not None:
            self._last = last
            f.process(x, n)
        elif self._again:  # short of memory at the start: tried again every _AGAIN chunks, the meter going on
            self._again -= 1
            if self._again == 0:
                self.start(self._ring)

    def _window(self, after):
        # SoundFeatures.on_window: classify the window that ended ``after`` samples before the chunk's end
        self.windows += 1
        m = self.ml.model
        if m is None:
            return
        f = self.features
        if m.window != f.window or m.info["hop"] != f.hop:
            self.start(self._ring)  # a model with other windows arrived: features for it from the next frame
            return
        n = getattr(m.trees, "n_inputs", m.trees.n_features)  # (a knn model's: the vector it reads)
        if len(f.out) != n:
            self.reason = "sound model needs {} features".format(n)
            return
        d = self.device
        cfg = d.config
        smooth = cfg.get("sound.class_smooth")
        if m.serial != self._serial:  # a new model: fresh smoothing
            self._hist = None
            try:
                self._hist = array.array("H", bytes(2 * smooth * len(m.classes)))
            except MemoryError:  # (tried again at the next window; the meter goes on)
                self.reason = "short of memory for the class smoothing: trying again at the next window"
                return
            self._serial = m.serial
            self._nh = 0
        if m.gids is None and self.windows % 32 == 0:  # the class table was not writable when it loaded
            m.gids = d.store.class_ids(m.classes)
        nh = self._nh
        best, conf = classify(m, f.out, self._hist, nh % smooth, nh + 1 if nh < smooth else smooth,
                              cfg.get("sound.class_unknown_permille"))
        self._nh = nh + 1 if nh < 0x40000000 else smooth
        t = self._ring.time_of(self._last - after)
        self.latest = (t, best, conf)
        self.reason = None
        bus = d.bus
        if m.gids is not None:
            bus.publish("soundclass", t, (m.gids[best] if best >= 0 else -1, conf))
        name = m.classes[best] if best >= 0 else UNKNOWN
        if name != self.label:
            bus.publish("events", t, {"type": "sound_change", "from": self.label, "to": name, "confidence": conf})
            self.label = name

    def status(self):
        m = self.ml.model
        lt = self.latest
        out = {"windows": self.windows, "reason": self.reason, "model": m.info["sha256"] if m else None,
               "prediction": None}
        if lt is not None and m is not None:
            out["prediction"] = {"t_ms": lt[0], "class": m.classes[lt[1]] if 0 <= lt[1] < len(m.classes) else UNKNOWN,
                                 "index": lt[1], "confidence": lt[2]}
        return out
