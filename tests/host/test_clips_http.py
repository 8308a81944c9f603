"""Audio clips (issue 18.1) through the device app's HTTP API over real sockets, the app at bundle.APP_HEAP on the
unix port, its microphone replaying real speech (Debian's pocketsphinx-testdata): recording a clip needs admin, it
is listed, exported as a WAV that Python's ``wave`` reads and as .npy, and its samples are the replayed ones bit
for bit, from clip.pre_ms before the request.

The replay is the microphone's: a loop held up longer than its FIFO (256 ms at 16 kHz: seen at a load of 11 on two
cores) loses frames there, as a real I2S buffer would, and a clip recording then ends at the gap (clips.py), shorter
by what it lost. So the clip is compared with what the microphone delivered: its frames and the ones it lost make the
clip's length, frames are lost only when the microphone dropped some, and what was kept is one gapless stretch of the
replay."""

import io
import json
import os
import wave

import numpy as np
import pytest

from conftest import wait_for

CARDS = "/usr/share/pocketsphinx/test/data/cards"


def _replayed():
    """The replayed stream: the folder's files in name order, one after another (it loops)."""
    out = []
    for name in sorted(os.listdir(CARDS)):
        if name.endswith(".wav"):
            with wave.open(os.path.join(CARDS, name)) as w:
                out.append(np.frombuffer(w.readframes(w.getnframes()), "<i2"))
    return np.concatenate(out)


@pytest.fixture
def dev(device_factory, tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "sim.mic_wav": CARDS, "accel.enabled": False, "clip.enabled": True, "clip.length_ms": 1500,
        "board.clip_ring_ms": 100, "clip.pre_ms": 100, "store.flush_ms": 250}))
    return device_factory(data_dir=d)


def test_a_clip_on_request_is_listed_and_exported_as_wav_and_npy_bit_for_bit(dev):
    assert dev.post("/api/clips", {}, auth=False).status == 401  # recording needs a credential (admin)
    assert dev.get("/api/clips", auth=False).status == 401
    wait_for(lambda: dev.status(), "the sound meter running", lambda s: (s.get("soundlevel") or {}).get("t_ms"))
    r = dev.post("/api/clips", {})
    assert r.status == 202, r.body
    assert r.json() == {"recording": True, "length_ms": 1500, "pre_ms": 100, "rate_hz": 16000}, json.dumps(dev.status()["store"].get("clips"))
    clips = wait_for(lambda: dev.get("/api/clips").json()["clips"], "the clip written",
                     lambda c: c and not c[0]["recording"])
    c = clips[0]
    # the clips resource offers wav: a format the document's Resource lists (Schemathesis, seed 1919 of the full
    # four-worker proof: "wav" is not one of "npy", "csv" or "json")
    from sensorbox.host import apidoc
    enum = apidoc.document()["components"]["schemas"]["Resource"]["properties"]["formats"]["items"]["enum"]
    res = {x["name"]: x["formats"] for x in dev.get("/api/resources").json()["resources"]}
    assert "wav" in res["clips"] and all(set(f) <= set(enum) for f in res.values()), (res, enum)
    st = dev.status()
    lost, mic = st["store"]["clips"]["lost_frames"], st["sensors"]["mic"]
    n = c["frames"]  # 24000 unless the microphone lost frames while it recorded: then it ended at the gap
    assert n + lost == 24000 and (lost == 0 or mic["gaps"] > 0) and n >= 64, (c, lost, mic)
    assert c["trigger"] == "demand" and c["pre_ms"] == 100 and c["pinned"], c
    assert c["end"] - c["start"] == n * 1000 // 16000
    r = dev.get("/api/resources/clips/data?format=wav&start={}&end={}".format(c["start"], c["end"]))
    assert r.status == 200 and r.headers.get("content-type", r.headers.get("Content-Type")) == "audio/wav"
    with wave.open(io.BytesIO(r.body)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, n)
        got = np.frombuffer(w.readframes(n), "<i2")
    src = _replayed()
    loop = np.concatenate([src, src[:24000]])
    # where the clip is in the replayed stream: its first 64 samples occur once; then every sample matches
    hits = [i for i in np.flatnonzero(loop[:len(src)] == got[0]) if np.array_equal(loop[i:i + 64], got[:64])]
    assert len(hits) == 1, (hits, c, lost, mic)
    assert np.array_equal(loop[hits[0]:hits[0] + n], got)
    r = dev.get("/api/resources/clips/data?start={}&end={}".format(c["start"], c["end"]))
    a = np.load(io.BytesIO(r.body))
    assert a.dtype.names == ("t", "pcm") and np.array_equal(a["pcm"], got) and a["t"][0] == c["start"]
    # kept: an event says so (recorded at the store's next flush point, stored at the one after: in its own time,
    # which a loaded machine makes longer than the export above); a bad query is a 400 naming the parameter
    wait_for(lambda: dev.get("/api/events").json(), "the clip's event", lambda evs: [
        e for e in evs if e["type"] == "clip" and e["start"] == c["start"] and e["trigger"] == "demand"])
    r = dev.get("/api/resources/clips/data?format=wav&columns=pcm")
    assert r.status == 400 and r.json()["field"] == "columns"
    r = dev.get("/api/clips?start=soon")
    assert r.status == 400 and r.json()["field"] == "start"


def test_clip_settings_are_checked_against_the_board(dev):
    r = dev.put("/api/config", {"clip.pre_ms": 200})
    assert r.status == 400 and r.json()["field"] == "clip.pre_ms" and "board.clip_ring_ms" in r.json()["error"]
    r = dev.put("/api/config", {"board.clip_ring_ms": 0})
    assert r.status == 400 and r.json()["field"] == "board.clip_ring_ms", r.body
    r = dev.put("/api/config", {"clip.length_ms": 4000})
    assert r.status == 400 and r.json()["field"] == "clip.length_ms"
    assert dev.put("/api/config", {"clip.enabled": False}).status == 200
    r = dev.post("/api/clips", {})
    assert r.status == 409 and r.json()["field"] == "clip.enabled"
