"""Corrupt files on flash never stop the device (issue 11.4): the real app on the unix port boots over a data
directory whose files hold bytes that are not UTF-8, wrong JSON types, a record of garbage or a directory where
a file belongs; it keeps what is valid, sets the rest aside as ``.bad`` (the store's files: ``store/quarantine``),
says so in ``/api/status`` -> ``files``, and answers every request (4xx, never 5xx). The proof over every
persisted file and many more corruptions is ``tests/host/test_proof_files.py``."""

import base64
import json
import os


def _boot(device_factory, data):
    dev = device_factory(data_dir=data)
    assert dev.proc.poll() is None
    return dev


def test_boots_over_the_corrupt_files_of_the_issue_and_reports_them(tmp_path, device_factory):
    data = tmp_path / "dev"
    dev = device_factory(data_dir=data)
    r = dev.post("/api/tokens", {"name": "reader", "scope": "read"})
    assert r.status == 201, r.body
    token = r.json()["token"]
    assert dev.post("/api/labels", {"start": 1000, "end": 2000, "label": "first"}).status == 201
    assert dev.post("/api/labels", {"start": 3000, "end": 4000, "label": "second"}).status == 201
    assert dev.post("/api/labels", {"start": 5000, "end": 6000, "label": "third"}).status == 201
    assert dev.put("/api/config", {"device.name": "kept"}).status == 200
    dev_id = dev.status()["device"]["id"]
    dev.stop()

    (data / "config.json").write_bytes(b'{"device.name": "caf\xe9 \xff\xfe"}')  # not UTF-8
    (data / "device-id").write_bytes(os.urandom(40))
    tokens = json.loads((data / "tokens.json").read_text())
    good = dict(tokens[0])
    tokens[0].pop("hash")  # an entry without its hash ...
    tokens.append(good)  # ... and a good one after it
    (data / "tokens.json").write_text(json.dumps(tokens))
    auth = json.loads((data / "auth.json").read_text())
    auth["iterations"] = "2000"  # a wrongly typed field
    (data / "auth.json").write_text(json.dumps(auth))
    labels = bytearray((data / "store" / "labels.bin").read_bytes())
    labels[8 + 22 + 5 + 4] = 0  # the status byte of the second label's record (the first: 22 + 5 + 4 bytes)
    (data / "store" / "labels.bin").write_bytes(bytes(labels))
    os.mkdir(data / "recording.json")  # a directory where a file belongs

    dev = _boot(device_factory, data)
    st = dev.status()  # Basic: the password from the environment, set again (auth.json was unreadable)
    files = " ".join(st["files"])
    for name in ("config.json", "device-id", "tokens.json", "auth.json", "recording.json"):
        assert name in files, (name, st["files"])
    assert st["config"]["boot_error"] and "config.json" in st["config"]["boot_error"]
    assert st["device"]["id"] != dev_id and len(st["device"]["id"]) == 12
    assert (data / "config.json.bad").exists() and (data / "tokens.json.bad").exists()
    assert (data / "recording.json.bad").is_dir() and not (data / "recording.json").exists()
    # the valid token still works, the one without a hash is gone; nothing answers 5xx
    h = {"Authorization": "Bearer " + token}
    r = dev.get("/api/labels", auth=False, headers=h)
    assert r.status == 200, r.body
    assert [x["label"] for x in r.json()["labels"]] == ["first", "third"]  # "second" was hit
    bad = {"Authorization": "Bearer sb_1_" + "0" * 32}
    assert dev.get("/api/labels", auth=False, headers=bad).status == 401
    basic = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
    assert dev.get("/api/config", auth=False, headers=basic).status in (401, 429)
    assert dev.get("/api/config").status == 200
    # and the next label written keeps the ones that were readable
    assert dev.post("/api/labels", {"start": 7000, "end": 8000, "label": "fourth"}).status == 201
    assert [x["label"] for x in dev.get("/api/labels").json()["labels"]] == ["first", "third", "fourth"]
    assert "Traceback" not in dev.output()
