"""config.json on flash: defaults, a bad file moved aside at boot, atomic validated updates, listeners."""

import json

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


def test_get_finds_every_key_whole():
    from sensorbox.shared import config_schema

    c = Config(tmpdir() + "/config.json", quiet_log())
    for e in config_schema.entries():  # keys that are the start or end of others among them (mqtt.tls/_ca)
        assert c.get(e[0]) == e[2], e[0]
    c.update({"mqtt.tls_ca": "/x.pem", "webhook.2.url": "http://h/2", "log.level": "debug"})
    assert c.get("mqtt.tls") is False and c.get("mqtt.tls_ca") == "/x.pem"
    assert c.get("webhook.url") == "" and c.get("webhook.2.url") == "http://h/2"
    assert c.get("log.level") == "debug" and c.as_dict()["log.level"] == "debug"
    for bad in ("mqtt", "tls", "log.leve", "og.level", "device.name\nhttp.port", ""):
        try:
            c.get(bad)
            raise AssertionError("found " + bad)
        except KeyError:
            pass
        assert c.get(bad, 7) == 7
    assert sorted(c.as_dict()) == sorted(e[0] for e in config_schema.entries())


def test_get_allocates_nothing_and_the_values_are_small():
    import gc

    import micropython

    path = tmpdir() + "/config.json"
    log = quiet_log()
    c = Config(path, log)  # the first one interns the schema module's names for good
    c = None
    gc.collect()
    before = gc.mem_alloc()
    c = Config(path, log)
    gc.collect()
    size = gc.mem_alloc() - before
    # a dict of str keys took ~5 KB (x64); the keys as one string and a list of values less than half of that.
    # Measured against a dict of the same keys, made here: each key costs ~30 bytes either way (2,688 bytes for
    # 72 keys, 2,848 for 77 with the sound classifier's five), so a fixed figure would count keys, not the form.
    d = c.as_dict()
    gc.collect()
    as_dict = gc.mem_alloc() - before - size
    d = None
    print("config values:", size, "bytes; as a dict:", as_dict)
    assert 2 * size < as_dict, (size, as_dict)
    micropython.heap_lock()
    try:
        a = c.get("store.soundlevel_kb")
        b = c.get("device.name")
        d = c.get("webhook.3.events")
        e = c.get("nope", None)
    finally:
        micropython.heap_unlock()
    assert (a, b, d, e) == (64, "sensorbox", "", None)


def test_keys_that_no_longer_validate_are_reset_and_the_rest_kept():
    # After an upgrade that narrows a range or drops a key, one bad key must not cost the whole configuration.
    d = tmpdir()
    text = '{"device.name": "lab-3", "accel.rate_hz": 33, "bogus.key": 1, "mic.poll_ms": 400, "log.level": "debug"}'
    _write(d + "/config.json", text)
    log = quiet_log()
    c = Config(d + "/config.json", log)
    assert c.get("device.name") == "lab-3" and c.get("log.level") == "debug"  # kept
    assert c.get("accel.rate_hz") == 50 and c.get("mic.poll_ms") == 50  # reset to defaults
    for k in ("accel.rate_hz", "bogus.key", "mic.poll_ms"):
        assert k in c.boot_error, c.boot_error
    assert _read(d + "/config.json.bad") == text  # as it was, for inspection
    assert json.loads(_read(d + "/config.json")) == {"device.name": "lab-3", "log.level": "debug"}  # repaired
    assert any(e["level"] == "error" and "reset to defaults" in e["msg"] for e in log.entries())
    c2 = Config(d + "/config.json", quiet_log())  # and the next boot is clean
    assert c2.boot_error is None and c2.get("device.name") == "lab-3"


def test_corrupt_file_is_kept_aside_and_defaults_used():
    d = tmpdir()
    for text, words in (("{not json", "invalid"), ("[1,2]", "not a JSON object")):
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
    c.listen(lambda keys, services: seen.append((keys, services)))
    assert c.update({"accel.rate_hz": 100, "device.name": "lab"}) == ["device.name", "accel.rate_hz"]
    assert seen == [(["device.name", "accel.rate_hz"], ["mqtt", "wifi", "accel"])]  # and what they restart (the schema's)
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
            assert e.field in bad
    assert c.get("device.name") == "before" and c.get("accel.rate_hz") == 50
    assert _read(d + "/config.json") == on_disk


def test_reboot_keys_are_listed():
    c = Config(tmpdir() + "/config.json", quiet_log())
    c.update({"http.port": 8081})
    assert c.reboot_pending == ["http.port"]
    assert c.booted == {"http.port": 80}  # the value in effect until the restart (GET /api/config: in_effect)
    c.update({"http.port": 8082})
    assert c.reboot_pending == ["http.port"] and c.booted == {"http.port": 80}
    c.update({"http.port": 80})  # back to the value that runs: nothing is pending any more
    assert c.reboot_pending == [] and c.booted == {}


def test_failed_save_keeps_old_config():
    c = Config("/nonexistent-dir/config.json", quiet_log())
    try:
        c.update({"device.name": "x"})
        raise AssertionError("saved to a missing directory")
    except OSError:
        pass
    assert c.get("device.name") == "sensorbox"


def test_an_update_is_checked_as_validate_checks_it():
    # The device checks an update key by key (config_schema.check_update, no dict of the whole configuration);
    # it must accept and refuse exactly what validate() does, the checks across keys included.
    from sensorbox.shared import config_schema as schema

    c = Config(tmpdir() + "/config.json", quiet_log())
    cases = [{"accel.rate_hz": 100, "device.name": "x"}, {"accel.rate_hz": 7}, {"no.such": 1}, {5: 1}, [],
             {"mic.rate_hz": 16000, "mic.poll_ms": 42}, {"mic.poll_ms": 30}, {"mqtt.commands": True},
             {"mqtt.command_token": "t", "mqtt.commands": True}, {"mqtt.prefix": "a/#"},
             {"webhook.url": "ftp://x"}, {"webhook.url": "http://h/x", "webhook.resources": "nope"},
             {"sound.sensitivity_dbfs": -30}, {"log.level": "debug"}, {"ml.hop": 200}, {"ml.window": 32},
             {"ml.window": 256, "ml.hop": 200}, {"mqtt.command_token": ""}]
    for upd in cases:
        current = c.as_dict()
        try:
            want = schema.validate(upd, current)
        except ValueError as e:
            want = ("refused", getattr(e, "field", None))
        try:
            c.update(upd)
            got = c.as_dict()
        except ValueError as e:
            got = ("refused", getattr(e, "field", None))
        assert got == want, (upd, got, want)


class _Model:
    window = 128
    channels = 3
    info = {"trees": 20, "nodes": 620, "leaves": 7}  # the shipped model's: 5607 bytes of RAM


def _refused(c, update, key, words):
    try:
        c.update(update)
    except ValueError as e:
        assert e.field == key and words in e.reason, (e.field, e.reason)
        return
    raise AssertionError("accepted {}".format(update))


def test_ml_keys_are_checked_against_the_running_model():
    # ml.window 64 with a 128-frame model used to be accepted and stop analysis ("model needs 128-frame windows")
    c = Config(tmpdir() + "/config.json", quiet_log())
    from sensorbox.device.analysis.pipeline import ModelSlot  # (here: 23 KB the module's other tests keep)

    dev = type("Dev", (), {})()
    dev.ml = ModelSlot()
    dev.ml.model = _Model()
    c.device = dev
    _refused(c, {"ml.window": 64}, "ml.window", "trained on 128-frame windows")
    _refused(c, {"ml.model_max_kb": 5}, "ml.model_max_kb", "needs 5607 bytes of RAM: at least 6 KB")
    assert c.update({"ml.model_max_kb": 6}) == ["ml.model_max_kb"]
    assert c.update({"ml.hop": 32, "ml.smooth": 5}) == ["ml.hop", "ml.smooth"]
    # the gyroscope: off under a 6-channel model is refused (the model would not run after the restart)
    assert c.update({"accel.gyro": True}) == ["accel.gyro"]
    dev.ml.model.channels = 6
    _refused(c, {"accel.gyro": False}, "accel.gyro", "needs the gyroscope (6 channels)")
    dev.ml.model.channels = 3
    assert c.update({"accel.gyro": False}) == ["accel.gyro"]
    dev.ml.held = True  # a model loading (at boot: no model yet) may be of another window
    dev.ml.model = None
    _refused(c, {"ml.window": 64}, "ml.window", "being loaded")
    dev.ml.held = False
    assert c.update({"ml.window": 64}) == ["ml.window"]  # no model runs: any window the extractor takes
    assert c.get("ml.window") == 64 and c.get("ml.hop") == 32


def test_a_ca_certificate_is_kept_in_a_file_of_its_own():
    """A CA certificate's PEM text (mqtt.tls_ca, webhook.tls_ca: up to 4000 characters) is not held in RAM for
    as long as the device runs nor written into config.json: it goes into a file beside config.json named by its
    CRC, the value its path (the same text again: unchanged, the same file; another: a new file, the old one
    removed; "": removed). Text that is not PEM is refused naming the key, the value in force kept."""
    import os

    d = tmpdir()
    path = d + "/config.json"
    c = Config(path, quiet_log())
    ca = "-----BEGIN CERTIFICATE----- " + "MIIB/+a9=" * 400 + " -----END CERTIFICATE-----"
    assert len(ca) <= 4000
    assert c.update({"mqtt.tls_ca": ca, "device.name": 'q"\\'}) == ["device.name", "mqtt.tls_ca"]
    f = c.get("mqtt.tls_ca")
    assert f.startswith(d + "/mqtt.tls_ca.") and f.endswith(".pem") and len(f) == len(d) + 25
    assert _read(f) == ca
    assert json.loads(_read(path)) == {"mqtt.tls_ca": f, "device.name": 'q"\\'}
    assert sorted(os.listdir(d)) == ["config.json", f[len(d) + 1:]]
    assert c.update({"mqtt.tls_ca": ca}) == [] and sorted(os.listdir(d)) == ["config.json", f[len(d) + 1:]]
    c2 = Config(path, quiet_log())
    assert c2.get("mqtt.tls_ca") == f and c2.boot_error is None
    for bad, words in (("x", "expected PEM text"), (ca[:-10], "expected PEM text"),
                       (ca.replace("MIIB", "MI.B", 1), "cannot hold at 30"), ("/y.pem\n", "control")):
        try:
            c2.update({"mqtt.tls_ca": bad})
            raise AssertionError("took " + bad[:40])
        except ValueError as e:
            assert e.field == "mqtt.tls_ca" and words in e.reason, (e.reason, words)
        assert c2.get("mqtt.tls_ca") == f and _read(f) == ca
    assert sorted(os.listdir(d)) == ["config.json", f[len(d) + 1:]]
    other = ca.replace("MIIB", "MIIC", 1)
    assert c2.update({"mqtt.tls_ca": other, "webhook.tls_ca": ca}) == ["mqtt.tls_ca", "webhook.tls_ca"]
    f2 = c2.get("mqtt.tls_ca")
    assert f2 != f and _read(f2) == other and _read(c2.get("webhook.tls_ca")) == ca and not exists(f)
    c2.update({"mqtt.tls_ca": "", "webhook.tls_ca": "", "device.name": "sensorbox"})
    assert json.loads(_read(path)) == {} and os.listdir(d) == ["config.json"]


def test_a_free_flash_floor_retention_could_never_reach_is_refused():
    # store.min_free_kb beyond what the flash can ever have free made retention delete every stored row
    c = Config(tmpdir() + "/config.json", quiet_log())
    from sensorbox.device.analysis.pipeline import ModelSlot  # (here: 23 KB the module's other tests keep)

    dev = type("Dev", (), {})()
    dev.ml = ModelSlot()
    dev.platform = type("P", (), {"flash_stats": lambda self: (2048 * 1024, 1500 * 1024)})()
    dev.store = type("S", (), {"res": [type("R", (), {"bytes": 300 * 1024})(), type("R", (), {"bytes": 100 * 1024})()]})()
    c.device = dev
    _refused(c, {"store.min_free_kb": 1900}, "store.min_free_kb", "less than 1900 KB")
    _refused(c, {"store.min_free_kb": 65536}, "store.min_free_kb", "1500 KB free and the store holds 400 KB")
    assert c.update({"store.min_free_kb": 1899}) == ["store.min_free_kb"]  # reachable: deletes old data, not all
    assert c.update({"store.min_free_kb": 0}) == ["store.min_free_kb"]


def test_in_effect_shows_a_secret_only_as_set():
    # No secret applies at a restart today; if one did, GET /api/config's in_effect must not reveal the old value.
    from sensorbox.device.http import api
    from sensorbox.shared import config_schema as schema

    d = tmpdir()
    _write(d + "/config.json", json.dumps({"mqtt.password": "old-secret"}))
    c = Config(d + "/config.json", quiet_log())
    line = [ln for ln in "".join(schema.SPECS).split("\n") if ln.startswith("mqtt.password ")][0]
    # the schema stays loaded (imported here): the change holds
    schema.SPECS = tuple(s.replace(line, line + " reboot") for s in schema.SPECS)
    assert schema.needs_reboot("mqtt.password")
    c.update({"mqtt.password": "new-secret", "http.port": 8081})
    assert c.booted == {"mqtt.password": "old-secret", "http.port": 80}  # kept in RAM to tell a change back
    v = json.loads("".join(api.config_json(c, None)))  # (GET /api/config)
    assert v["in_effect"] == {"mqtt.password": {"set": True}, "http.port": 80}, v["in_effect"]
    assert v["config"]["mqtt.password"] == {"set": True}
    assert "old-secret" not in json.dumps(v) and "new-secret" not in json.dumps(v)


def test_the_webhook_checks_go_with_the_schema():
    # The schema's webhook checks import integration_settings while they run (after config_file's load): it is
    # dropped with config_file, else it stayed resident for good (1.8 KB on a device with a webhook; it did).
    import sys

    name = "sensorbox.shared.integration_settings"
    d = tmpdir()
    _write(d + "/config.json", json.dumps({"webhook.url": "http://h/1"}))
    c = Config(d + "/config.json", quiet_log())
    assert c.get("webhook.url") == "http://h/1" and name not in sys.modules
    c.update({"webhook.2.url": "http://h/2"})
    assert c.get("webhook.2.url") == "http://h/2" and name not in sys.modules
