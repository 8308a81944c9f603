"""config.json on flash: defaults, a bad file moved aside at boot, atomic validated updates, listeners."""

import json
import os

from devtest import exists, quiet_log, tmpdir
from sensorbox.device.config import Config


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _read(path):
    with open(path) as f:
        return f.read()


def test_missing_file_means_defaults():
    c = Config(tmpdir() + "/config.json", quiet_log())
    assert c.get("accel.rate_hz") == 50 and c.boot_error is None


def test_corrupt_file_is_kept_aside_and_defaults_used():
    d = tmpdir()
    for text, words in (("{not json", "invalid"), ('{"accel.rate_hz": 33}', "accel.rate_hz"),
                        ('{"bogus.key": 1}', "bogus.key"), ("[1,2]", "(body)")):
        _write(d + "/config.json", text)
        log = quiet_log()
        c = Config(d + "/config.json", log)
        assert c.get("accel.rate_hz") == 50
        assert c.boot_error and words in c.boot_error, c.boot_error
        assert not exists(d + "/config.json")
        assert _read(d + "/config.json.bad") == text
        assert any(e["level"] == "error" and "config.json" in e["msg"] for e in log.entries())


def test_update_validates_saves_atomically_and_notifies():
    d = tmpdir()
    c = Config(d + "/config.json", quiet_log())
    seen = []
    c.listen(lambda keys: seen.append(keys))
    assert c.update({"accel.rate_hz": 100, "device.name": "lab"}) == ["device.name", "accel.rate_hz"]
    assert seen == [["device.name", "accel.rate_hz"]]
    saved = json.loads(_read(d + "/config.json"))
    assert saved == {"accel.rate_hz": 100, "device.name": "lab"}  # only non-defaults
    assert not exists(d + "/config.json.tmp")
    assert c.update({"accel.rate_hz": 100}) == []  # no change, no write, no notification
    assert len(seen) == 1
    c2 = Config(d + "/config.json", quiet_log())  # survives a reboot
    assert c2.get("accel.rate_hz") == 100 and c2.get("device.name") == "lab"


def test_rejected_update_changes_nothing():
    d = tmpdir()
    c = Config(d + "/config.json", quiet_log())
    c.update({"device.name": "before"})
    on_disk = _read(d + "/config.json")
    for bad in ({"accel.rate_hz": 7}, {"device.name": "ok", "nope": 1}, {"mic.enabled": "no"}):
        try:
            c.update(bad)
            raise AssertionError("accepted {}".format(bad))
        except ValueError as e:
            assert e.key in bad
    assert c.get("device.name") == "before" and c.get("accel.rate_hz") == 50
    assert _read(d + "/config.json") == on_disk


def test_reboot_keys_are_listed():
    c = Config(tmpdir() + "/config.json", quiet_log())
    c.update({"http.port": 8081})
    assert c.reboot_pending == ["http.port"]


def test_failed_save_keeps_old_config():
    c = Config("/nonexistent-dir/config.json", quiet_log())
    try:
        c.update({"device.name": "x"})
        raise AssertionError("saved to a missing directory")
    except OSError:
        pass
    assert c.get("device.name") == "sensorbox"
