"""The store through the device app's HTTP API, over real sockets, with the app on the MicroPython unix port.

The simulated accelerometer replays data/watch_excerpt.npy: frame ``seq`` is recording frame ``seq % N`` at
``t0 + 20*seq`` ms, and the store's first frame is seq 0. With stalls injected every 2 s (their frames never
reach the FIFO), an export must hold exactly the recording's frames outside the stalls: same values, same times,
explicit gaps.
"""

import io
import json
import os
import time

import numpy as np
import pytest

from conftest import wait_for
from sensorbox.host import bundle

SRC = np.load(os.path.join(bundle.REPO, "data", "watch_excerpt.npy"))[:, :3].astype(np.int64)
GAP_EVERY_MS, GAP_MS = 2000, 300


def _start(factory, tmp_path, name, config):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    return factory(data_dir=d)  # at bundle.APP_HEAP, like `sensorbox run`


@pytest.fixture
def dev(device_factory, tmp_path):
    return _start(device_factory, tmp_path, "gaps", {
        "sim.replay_gap_every_s": GAP_EVERY_MS // 1000, "sim.replay_gap_ms": GAP_MS, "store.flush_ms": 250,
        "mic.enabled": False})


def _npy(dev, query):
    r = dev.get("/api/resources/accel/data?" + query)
    assert r.status == 200, r.body
    return np.load(io.BytesIO(r.body)), r.headers


def _expected_seqs(first_t, start, end):
    """Sequence numbers the simulated sensor delivered (not stalled) with start <= t < end."""
    s = np.arange(max(0, (start - first_t) // 20), (end - first_t) // 20 + 1)
    rel = s * 20
    s = s[(rel % GAP_EVERY_MS) < GAP_EVERY_MS - GAP_MS]
    t = first_t + 20 * s
    return s[(t >= start) & (t < end)]


def test_npy_export_is_exactly_the_replayed_recording(dev):
    # on flash: 4.4 s of sampling (the window below) and both stalls in it
    wait_for(lambda: dev.resource("accel"), "4.4 s of accel with two stalls stored",
             lambda r: r["gaps"] >= 2 and r["end"] - r["start"] > 4400)
    whole, _ = _npy(dev, "")
    assert whole.dtype.names == ("t", "x", "y", "z") and whole.dtype["x"] == np.int16
    first_t = int(whole["t"][0])
    seqs = _expected_seqs(first_t, first_t, int(whole["t"][-1]) + 1)
    assert np.array_equal(whole["t"], first_t + 20 * seqs)
    assert np.array_equal(np.column_stack([whole["x"], whole["y"], whole["z"]]), SRC[seqs % len(SRC)])
    # A window in the middle, by time: exactly the recording's frames for that range, gaps included.
    start, end = first_t + 1234, first_t + 4321
    a, h = _npy(dev, "start={}&end={}".format(start, end))
    seqs = _expected_seqs(first_t, start, end)
    assert len(seqs) > 100 and int(h["X-Sensorbox-Rows"]) == len(a) == len(seqs)
    assert np.array_equal(a["t"], first_t + 20 * seqs)
    assert np.array_equal(np.column_stack([a["x"], a["y"], a["z"]]), SRC[seqs % len(SRC)])
    jumps = np.diff(a["t"])
    assert set(jumps.tolist()) == {20, GAP_MS + 20}, "stalls must show as explicit time gaps"
    st = dev.status()
    assert st["sensors"]["accel"]["dropped"] > 0 and st["store"]["bytes"] > 0
    res = dev.get("/api/resources").json()
    accel = [r for r in res["resources"] if r["name"] == "accel"][0]
    assert accel["gaps"] >= 2 and accel["rate_hz"] == 50 and accel["columns"] == ["t", "x", "y", "z"]
    # a block per flush point (250 ms: 12 frames of 6 bytes) has an 8-byte header; a segment a 32-byte one
    per_day = 50 * 6 * 86400 * (12 * 6 + 8) / (12 * 6)
    assert per_day <= accel["bytes_per_day"] < per_day * 1.002, accel["bytes_per_day"]
    assert accel["days_until_full"] is not None and accel["start"] == first_t


def test_csv_columns_decimation_and_since(dev):
    dev.wait_stored("accel", rows=100)
    r = dev.get("/api/resources/accel/data?format=csv&columns=t,z")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    lines = r.body.decode().strip().split("\n")
    assert lines[0] == "t,z" and len(lines) > 50
    last_t = int(lines[-1].split(",")[0])
    assert r.headers["X-Sensorbox-Next"] == str(last_t)
    # Incremental: since=Next gives only newer rows, and nothing is skipped.
    dev.wait_stored("accel", after=last_t)
    r2 = dev.get("/api/resources/accel/data?format=csv&columns=t,z&since={}".format(last_t))
    more = r2.body.decode().strip().split("\n")[1:]
    assert more and int(more[0].split(",")[0]) > last_t
    r3 = dev.get("/api/resources/accel/data?format=csv&columns=t,z")
    assert r3.body.decode().strip().split("\n")[1:len(lines) + len(more)] == lines[1:] + more
    # Decimation bounds the output and keeps the envelope.
    full, _ = _npy(dev, "")
    d, h = _npy(dev, "max_points=10&end={}".format(int(full["t"][-1]) + 1))
    assert len(d) == 10 and int(h["X-Sensorbox-Decimated"]) > 0
    assert d.dtype.names[:4] == ("t", "n", "x_min", "x_max")
    assert d["n"].sum() == len(full)
    assert d["x_min"][d["n"] > 0].min() == full["x"].min() and d["x_max"].max() == full["x"].max()
    # Huge ranges are fine (streamed); decimation bounds even those.
    d2, _ = _npy(dev, "start=0&end=9007199254740992&max_points=7")
    assert len(d2) <= 7


def test_bad_queries_get_400_with_field_and_no_traversal(dev):
    cases = [
        ("accel/data?start=yesterday", "start"), ("accel/data?start=10&end=5", "end"),
        ("accel/data?columns=x,nope", "columns"), ("accel/data?columns=x,x", "columns"),
        ("accel/data?format=xlsx", "format"), ("events/data?format=npy", "format"),
        ("accel/data?max_points=1", "max_points"), ("accel/data?max_points=10000000", "max_points"),
        ("accel/data?limit=5", "limit"), ("nosuch/data", "name"), ("..%2F..%2Fconfig.json/data", "name"),
        ("accel/data?end=99999999999999999999", "end"), ("accel/data?since=-", "since"),
    ]
    for q, field in cases:
        r = dev.get("/api/resources/" + q)
        assert r.status == (404 if field == "name" else 400), (q, r.status, r.body)  # (no such resource: 404)
        body = r.json()
        assert body["field"] == field and body["error"], (q, body)
    for path in ("/api/resources/../../config.json/data", "/api/resources/accel/../../../etc/passwd"):
        assert dev.get(path).status in (400, 404)
    for path in ("/api/resources", "/api/resources/accel/data", "/api/labels"):
        assert dev.get(path, auth=False).status == 401
    assert dev.post("/api/labels", {"start": 1, "end": 2, "label": "x"}, auth=False).status == 401


def test_labels_create_list_export_delete(dev):
    r = dev.post("/api/labels", {"start": 1000, "end": 5000, "label": "walking, fast"})
    assert r.status == 201, r.body
    ident = r.json()["id"]
    assert dev.post("/api/labels", {"start": 6000, "end": 7000, "label": "rest"}).status == 201
    labs = dev.get("/api/labels").json()["labels"]
    assert [x["label"] for x in labs] == ["walking, fast", "rest"] and labs[0]["id"] == ident
    csv = dev.get("/api/resources/labels/data?format=csv&start=0&end=5500").body.decode()
    assert csv == 'start,end,label\n1000,5000,"walking, fast"\n'
    for bad, field in (({"start": 5, "end": 1, "label": "x"}, "end"), ({"start": "a", "end": 1, "label": "x"}, "start"),
                       ({"start": 1, "end": 2, "label": ""}, "label"), ({"start": 1, "end": 2}, "label"),
                       ({"start": 1, "end": 2, "label": "x", "extra": 1}, "extra")):
        r = dev.post("/api/labels", bad)
        assert r.status == 400 and r.json()["field"] == field, (bad, r.body)
    # 1 to 40 characters (not bytes): what the UI enforces too
    assert dev.post("/api/labels", {"start": 8000, "end": 9000, "label": "x" * 41}).status == 400
    # an overlapping range is refused with the label it overlaps (409), unless confirmed
    r = dev.post("/api/labels", {"start": 4000, "end": 6500, "label": "\u00fc" * 40})
    assert r.status == 409 and r.json()["field"] == "overlap" and '"walking, fast"' in r.json()["error"], r.body
    r = dev.post("/api/labels", {"start": 4000, "end": 6500, "label": "\u00fc" * 40, "overlap": True})
    assert r.status == 201, r.body
    assert dev.request("DELETE", "/api/labels/{}".format(r.json()["id"])).status == 200
    assert dev.request("DELETE", "/api/labels/{}".format(ident)).status == 200
    assert dev.request("DELETE", "/api/labels/{}".format(ident)).status == 404
    assert [x["label"] for x in dev.get("/api/labels").json()["labels"]] == ["rest"]


@pytest.mark.light
def test_tiny_budget_keeps_newest_reports_drops_keeps_sampling(device_factory, tmp_path):
    d = _start(device_factory, tmp_path, "tiny", {"store.accel_kb": 4, "accel.rate_hz": 100, "store.flush_ms": 200,
                                                   "mic.enabled": False})
    # (the answer's "store" summary is taken when the answer starts, each resource's figures as it is sent: a
    # segment retention deletes in between shows in the resource's and not yet in the summary: fresh38 saw 2 and 1)
    res = wait_for(lambda: d.get("/api/resources").json(), "two segments deleted",
                   lambda res: res["resources"][0]["retention"]["deleted_segments"] >= 2
                   and res["store"]["retention_deleted_segments"] >= 2)
    accel = res["resources"][0]
    assert accel["bytes"] <= 4096 + 1024 and accel["lost_rows"] == 0
    assert d.status()["store"]["retention_deleted_segments"] >= 2
    now_ms = d.status()["time_ms"]
    d.wait_stored("accel", after=now_ms)  # the newest data goes on flash (the oldest makes room)...
    a, _ = _npy(d, "")
    assert int(a["t"][-1]) > now_ms, "the newest data must be on flash"
    assert np.all(np.diff(a["t"]) == 10)
    before = d.status()["sensors"]["accel"]["received"]  # ...and sampling goes on
    wait_for(d.status, "sampling on", lambda st: st["sensors"]["accel"]["received"] > before)


def test_500_labels_and_features_named_in_the_boot_that_made_them(device_factory, tmp_path):
    """The documented limit of 500 labels at the app's heap: add, list (streamed), export, delete all; and the
    features the pipeline stores are exported, with their names, while the device that made them runs."""
    from sensorbox.shared import features

    d = _start(device_factory, tmp_path, "labels", {"store.flush_ms": 250, "mic.enabled": False})
    tok = d.post("/api/tokens", {"name": "labels", "scope": "admin"})
    assert tok.status == 201, tok.body
    h = {"Authorization": "Bearer " + tok.json()["token"]}  # no password hashing per request
    ids = []
    for i in range(500):
        r = d.post("/api/labels", {"start": 1000 * i, "end": 1000 * i + 500, "label": "act ü,{}".format(i % 9)},
                   auth=False, headers=h)
        assert r.status == 201, (i, r.status, r.body)
        ids.append(r.json()["id"])
    r = d.post("/api/labels", {"start": 1, "end": 2, "label": "one too many"}, auth=False, headers=h)
    assert r.status == 400 and "500" in r.json()["error"], r.body
    labs = d.get("/api/labels", auth=False, headers=h).json()["labels"]
    assert [x["id"] for x in labs] == ids and labs[499]["label"] == "act ü,4" and labs[499]["start"] == 499000
    csv = d.get("/api/resources/labels/data?format=csv", auth=False, headers=h).body.decode().split("\n")
    assert csv[0] == "start,end,label" and len(csv) == 502 and csv[500] == '499000,499500,"act ü,4"'
    res = d.get("/api/resources", auth=False, headers=h).json()["resources"]
    assert [x for x in res if x["name"] == "labels"][0]["count"] == 500
    for i in ids:
        r = d.request("DELETE", "/api/labels/{}".format(i), auth=False, headers=h)
        assert r.status == 200, (i, r.status, r.body)
    assert d.get("/api/labels", auth=False, headers=h).json() == {"labels": []}
    r = d.post("/api/labels", {"start": 1, "end": 2, "label": "again"}, auth=False, headers=h)
    assert r.status == 201 and r.json()["id"] == 501
    # features: the pipeline's windows, named as the model input, exported without a restart
    names = ("t",) + features.names(3)
    r = wait_for(lambda: d.get("/api/resources/features/data", auth=False, headers=h), "features stored",
                 lambda r: r.status != 200 or len(np.load(io.BytesIO(r.body))))
    assert r.status == 200, r.body
    f = np.load(io.BytesIO(r.body))
    assert f.dtype.names == names and len(f) >= 1
    res = d.get("/api/resources", auth=False, headers=h).json()["resources"]
    assert [x for x in res if x["name"] == "features"][0]["columns"] == list(names)


def test_pins_pulls_and_rollups_over_http(dev):
    """Labelled data is pinned until a pull says it has it (POST /api/pulled) or the label is unpinned; the
    listing says what is pinned and what the rollups are; resolution=auto names what it read."""
    dev.wait_stored("accel", rows=60)
    whole, _ = _npy(dev, "")
    t0 = int(whole["t"][0])
    r = dev.post("/api/labels", {"start": t0, "end": t0 + 1000, "label": "walk"})
    assert r.status == 201, r.body
    walk = r.json()["id"]
    sit = dev.post("/api/labels", {"start": t0 + 1500, "end": t0 + 2000, "label": "sit"}).json()["id"]
    labs = {x["label"]: x for x in dev.get("/api/labels").json()["labels"]}
    assert labs["walk"]["pinned"] and labs["sit"]["pinned"]
    res = {x["name"]: x for x in dev.get("/api/resources").json()["resources"]}
    assert res["accel"]["pinned_bytes"] > 0 and res["accel"]["period_ms"] is None
    assert res["soundlevel_1m"]["period_ms"] == 60000 and res["predictions_1h"]["period_ms"] == 3600000
    assert res["soundlevel_1m"]["columns"] == ["t", "n", "leq", "lmin", "lmax", "l10", "l50", "l90"]
    st = dev.status()["store"]["pins"]
    assert st["pinned_ranges"] >= 1 and st["over_budget"] == [] and st["fills_flash"] is False
    for body, field in (({"accel": "soon"}, "accel"), ({"nope": 1}, "nope"), ([], "(body)"),
                        ({"soundlevel_1h": 1}, "soundlevel_1h")):
        r = dev.post("/api/pulled", body)
        assert r.status == 400 and r.json()["field"] == field, (body, r.body)
    r = dev.post("/api/pulled", {"accel": t0 + 1200})
    assert r.status == 200 and r.json() == {"pinned": [sit], "released": [walk]}, r.body
    r = dev.post("/api/labels/{}/unpin".format(sit), {})
    assert r.status == 200 and r.json() == {"id": sit, "pinned": False}, r.body
    assert dev.post("/api/labels/999/unpin", {}).status == 404
    assert [x["pinned"] for x in dev.get("/api/labels").json()["labels"]] == [False, False]
    r = dev.get("/api/resources/soundlevel/data?format=csv&resolution=auto&start=-60000&max_points=5")
    assert r.status == 200 and r.headers["X-Sensorbox-Resolution"] == "raw", r.headers
    r = dev.get("/api/resources/accel/data?resolution=auto")
    assert r.status == 400 and r.json()["field"] == "resolution"


def test_capture_only_keeps_raw_data_around_a_loud_sound_over_http(device_factory, tmp_path):
    """capture.* on the running app: with capture.only the accelerometer is stored only around captures; a loud
    sound (the simulated 100 dB tone) opens one, silence ends it post_s later; the capture is an event and its frames
    (pre_s before the first loud level) are stored, nothing before."""
    # capture-only from boot (frames stored before a config update turned it on would be there, as they should)
    d = _start(device_factory, tmp_path, "capture", {"sim.mic_signal": "silence", "store.flush_ms": 250,
                                                      "capture.only": True, "capture.sound_db": 90,
                                                      "capture.pre_s": 2, "capture.post_s": 3})
    t_start = d.status()["uptime_s"]
    r = d.put("/api/config", {"capture.post_s": 2})  # (a change the store service restarts for: nothing lost)
    assert r.status == 200, r.body
    bad = d.put("/api/config", {"capture.pre_s": 7})
    assert bad.status == 400 and bad.json()["field"] == "capture.pre_s", bad.body
    time.sleep(4)  # silence: nothing stored (the ring's last 4 s wait for a trigger)
    loud_from = int(time.time() * 1000)
    assert d.put("/api/config", {"sim.mic_signal": "tone"}).status == 200
    for _ in range(100):
        cap = d.status()["store"]["capture"]
        if cap["open"]:
            break
        time.sleep(0.1)
    assert cap["open"] and cap["only"] and cap["sound_db"] == 90, cap
    time.sleep(2)
    assert d.put("/api/config", {"sim.mic_signal": "silence"}).status == 200
    for _ in range(150):
        evs = [e for e in d.get("/api/events").json() if e["type"] == "capture"]
        if evs:
            break
        time.sleep(0.1)
    assert len(evs) == 1 and evs[0]["trigger"] == "sound" and evs[0]["leq_db"] >= 90, evs
    ev = evs[0]
    a, _ = _npy(d, "")
    assert len(a) > 100 and a["t"][0] >= ev["start"] - 40 and a["t"][-1] <= ev["end"] + 40, (
        a["t"][0], a["t"][-1], ev)
    assert ev["start"] >= loud_from - 2000 - 1500, (ev, loud_from)  # pre_s before the first loud level
    assert d.status()["store"]["capture"]["captures"] == 1 and d.status()["uptime_s"] >= t_start
    assert [x for x in d.get("/api/labels").json()["labels"]] == []  # not a label
