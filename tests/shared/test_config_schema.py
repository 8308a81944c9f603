"""The config schema and validator, on CPython, MicroPython and WebAssembly."""

from sensorbox.shared import config_schema as schema
from sensorbox.shared.config_schema import ConfigError


def _rejects(update, key, words):
    try:
        schema.validate(update)
    except ConfigError as e:
        assert e.field == key, (e.field, key)
        assert words in e.reason, (e.reason, words)
        return
    raise AssertionError("accepted {}".format(update))


def test_defaults_validate():
    d = schema.defaults()
    assert schema.validate({}, d) == d
    assert d["accel.rate_hz"] == 50
    for key in (e[0] for e in schema.entries()):
        assert schema.check_value(key, d[key]) == d[key]


def test_update_merges_without_touching_inputs():
    current = schema.defaults()
    before = dict(current)
    merged = schema.validate({"accel.rate_hz": 100, "device.name": "lab-3"}, current)
    assert merged["accel.rate_hz"] == 100
    assert merged["device.name"] == "lab-3"
    assert current == before


def test_each_schema_string_is_a_small_block():
    # Each string is one heap block while a config update runs: at ~1 KB a busy device often had none free.
    assert len(schema.SPECS) > 1
    for s in schema.SPECS:
        assert s.startswith("\n") and s.endswith("\n") and len(s) <= 460, (len(s), s[:40])
        assert "  " not in s, "padding costs bytes of the block"


def test_unknown_key_is_named():
    _rejects({"accel.rate": 50}, "accel.rate", "unknown key")
    # Keys that contain a real key plus spacing must not match a line of the spec.
    for k in ("device.name str", "device.name ", "\ndevice.name", "", " ", "http.port int 80"):
        _rejects({k: "x"}, k, "unknown key")


def test_wrong_type_is_named():
    _rejects({"accel.poll_ms": "40"}, "accel.poll_ms", "expected an integer")
    _rejects({"accel.enabled": 1}, "accel.enabled", "true or false")
    _rejects({"device.name": 5}, "device.name", "expected a string")
    _rejects({"accel.poll_ms": True}, "accel.poll_ms", "expected an integer")


def test_out_of_range_is_named():
    _rejects({"accel.poll_ms": 0}, "accel.poll_ms", "out of range 5..1000")
    _rejects({"http.port": 70000}, "http.port", "out of range")
    _rejects({"device.name": ""}, "device.name", "length 0")
    _rejects({"device.name": "x\ny"}, "device.name", "control characters")


def test_choices():
    assert schema.validate({"accel.rate_hz": 25})["accel.rate_hz"] == 25
    _rejects({"accel.rate_hz": 30}, "accel.rate_hz", "not one of 25, 50, 100")
    _rejects({"log.level": "verbose"}, "log.level", "not one of")


def test_whole_float_is_an_int():
    assert schema.validate({"accel.poll_ms": 40.0})["accel.poll_ms"] == 40
    _rejects({"accel.poll_ms": 40.5}, "accel.poll_ms", "expected an integer")


def test_body_must_be_an_object():
    _rejects([1, 2], "(body)", "JSON object")


def test_first_bad_key_wins_and_nothing_is_applied():
    current = schema.defaults()
    try:
        schema.validate({"accel.rate_hz": 100, "zzz": 1}, current)
        raise AssertionError("accepted")
    except ConfigError as e:
        assert e.field == "zzz"
    assert current["accel.rate_hz"] == 50


def test_reboot_flag():
    assert schema.needs_reboot("http.port")
    assert not schema.needs_reboot("accel.rate_hz")


def test_gyroscope_key():
    # accel.gyro: off by default, a bool, applied at the next start (the sample ring is allocated once, at boot)
    assert schema.defaults()["accel.gyro"] is False
    assert schema.validate({"accel.gyro": True})["accel.gyro"] is True
    assert schema.needs_reboot("accel.gyro") and schema.restarts("accel.gyro") == ()
    _rejects({"accel.gyro": 1}, "accel.gyro", "expected true or false")
    _rejects({"accel.gyro": "on"}, "accel.gyro", "expected true or false")


#: The services the device app supervises that a config change can restart (tests/host/test_config_fuzz.py checks
#: that the running app restarts exactly the ones the schema names; "wifi" runs on boards only).
SERVICES = ("accel", "mic", "soundmeter", "pipeline", "store", "mqtt", "webhook", "wifi")


def test_every_key_names_what_its_change_restarts():
    # each block starts with the service its keys restart ("@-": none); a key's own "@service" overrides it
    for s in schema.SPECS:
        assert s.startswith("\n@"), s[:40]
    got = {}
    for k in (e[0] for e in schema.entries()):
        r = schema.restarts(k)
        assert isinstance(r, tuple) and all(s in SERVICES for s in r), (k, r)
        assert not r or not schema.needs_reboot(k), k  # (applies at the next start: nothing to restart)
        got[k] = r
    assert got["accel.rate_hz"] == ("accel",) and got["sim.replay_noise"] == ("accel",)
    assert got["mic.channel"] == ("mic",) and got["sim.mic_wav"] == ("mic",)
    assert got["sound.classify"] == ("soundmeter",) and got["ml.hop"] == ("pipeline",)
    assert got["capture.pre_s"] == ("store",) and got["store.compress"] == ("store",)
    assert got["webhook.3.url"] == ("webhook",)
    assert got["device.name"] == ("mqtt", "wifi")  # (its own, not its block's: the MQTT client id, the hostname)
    assert got["log.level"] == () and got["http.port"] == () and got["board.i2c_sda"] == ()
    assert sorted(set(s for r in got.values() for s in r)) == sorted(SERVICES)
    assert schema.restarts("accel") == () and schema.restarts("@accel") == () and schema.restarts("x.y") == ()


def test_every_key_has_help():
    from sensorbox.shared import config_docs

    described = config_docs.describe()
    assert [d["key"] for d in described] == [e[0] for e in schema.entries()]
    for d in described:
        assert d["help"], d["key"]


def test_every_key_has_a_human_label_a_unit_where_it_has_one_and_a_group():
    # The UI shows these instead of dotted keys; they come from one place (config_docs), not from the UI's code.
    from sensorbox.shared import config_docs

    prefixes = [g["prefix"] for g in config_docs.groups()]
    for d in config_docs.describe():
        assert d["label"] and d["label"] != d["key"] and len(d["label"]) <= 40, d["key"]
        assert d["key"].split(".")[0] in prefixes, d["key"]
        assert d["advanced"] in (True, False)
        # a number whose help names a unit in brackets carries that unit
        for unit in ("ms", "s", "Hz", "KB", "g"):
            if "(" + unit + ")" in d["help"] or "(" + unit + "," in d["help"]:
                assert d["unit"] == unit, (d["key"], d["unit"], unit)
        if d["key"].endswith(("_ms", "_s", "_kb", "_hz", "_dbfs")):
            assert d["unit"], d["key"]
    kinds = {g["prefix"]: g["kind"] for g in config_docs.groups()}
    assert kinds["board"] == kinds["sim"] == "advanced" and kinds["mqtt"] == "integration"
    # every key of an advanced group is advanced
    for d in config_docs.describe():
        if kinds[d["key"].split(".")[0]] == "advanced":
            assert d["advanced"], d["key"]


def test_mic_poll_interval_is_bounded_by_its_range_only():
    # The sound meter reads the microphone's FIFO itself, a chunk at a time, so the 1024-frame ring no longer
    # bounds the poll (it did: 200 ms at 16 kHz lost 68 %); the sampler bounds it by half the FIFO's span
    # (tests/device/test_soundmeter.py: nothing lost at the largest value).
    assert schema.validate({"mic.poll_ms": 250})["mic.poll_ms"] == 250
    assert schema.validate({"mic.rate_hz": 16000}, schema.validate({"mic.rate_hz": 8000, "mic.poll_ms": 250}))
    _rejects({"mic.poll_ms": 251}, "mic.poll_ms", "out of range 5..250")
    _rejects({"mic.poll_ms": 4}, "mic.poll_ms", "out of range 5..250")


def test_integration_settings_are_checked_when_set_not_when_used():
    # What the sinks would only find out at their start is refused at once, naming the key.
    _rejects({"webhook.url": "ftp://x/hook"}, "webhook.url", "http:// or https://")
    _rejects({"webhook.2.url": "http://h:port/x"}, "webhook.2.url", "port is not a number")
    _rejects({"webhook.url": "http://h/x", "webhook.resources": "nope"}, "webhook.resources", "unknown resource")
    _rejects({"mqtt.prefix": "a/#/+"}, "mqtt.prefix", "wildcards")
    _rejects({"mqtt.commands": True}, "mqtt.commands", "mqtt.command_token")
    try:
        schema.validate({"webhook.url": "https://user:hunter2@hooks.example/services/T0/SECRET"})
        raise AssertionError("accepted user info")
    except ConfigError as e:
        assert e.field == "webhook.url" and "hunter2" not in e.reason and "SECRET" not in e.reason, e.reason
    ok = schema.validate({"webhook.url": "https://hooks.example:8443/x?token=1", "webhook.resources": "events",
                          "mqtt.commands": True, "mqtt.command_token": "t0ken", "mqtt.prefix": "lab/boxes"})
    assert ok["webhook.url"].endswith("token=1")


def test_urls_are_shown_without_their_path():
    from sensorbox.shared import integration_settings as cfgi

    r = cfgi.redact_url
    assert r("https://hooks.example/services/T0/SECRET?token=abc") == "https://hooks.example/..."
    assert r("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/"
    assert r("http://h") == "http://h"
    assert r("https://u:pw@h:1/x") == "https://***@h:1/..."
    assert cfgi.parse_url("http://127.0.0.1:8080/hook?a=1") == (False, "127.0.0.1", 8080, "/hook?a=1")


def test_analysis_window_and_hop():
    # ml.window: only the sizes the feature extractor (an FFT) takes; 100 used to be accepted and crash the
    # pipeline in a restart loop. ml.hop: at most the window (it was accepted and clamped silently).
    for w in (32, 64, 128, 256):
        assert schema.validate({"ml.window": w, "ml.hop": min(64, w)})["ml.window"] == w
    _rejects({"ml.window": 100}, "ml.window", "not one of 32, 64, 128, 256")
    _rejects({"ml.hop": 129}, "ml.hop", "must not exceed ml.window (128)")
    _rejects({"ml.window": 32}, "ml.window", "lower ml.hop first")  # hop 64 > 32: the key changed is named
    _rejects({"ml.window": 32, "ml.hop": 64}, "ml.window", "must not exceed")
    assert schema.validate({"ml.window": 32, "ml.hop": 32})["ml.hop"] == 32
    assert schema.validate({"ml.hop": 128})["ml.hop"] == 128


def test_cross_key_refusals_name_the_key_being_changed():
    # what the Settings page sends, one key at a time: the refusal names that key
    _rejects({"webhook.2.resources": "nonsense"}, "webhook.2.resources", "unknown resource")  # no URL set yet
    cur = schema.validate({"mqtt.command_token": "t", "mqtt.commands": True})
    try:
        schema.validate({"mqtt.command_token": ""}, cur)
        raise AssertionError("accepted")
    except ConfigError as e:
        assert e.field == "mqtt.command_token" and "turn it off first" in e.reason, (e.field, e.reason)
    _rejects({"mqtt.commands": True}, "mqtt.commands", "set mqtt.command_token first")
    # without a token, commands need a broker that authenticates clients (Home Assistant sends no token)
    cur = schema.validate({"mqtt.username": "box", "mqtt.commands": True})
    assert cur["mqtt.commands"] is True and cur["mqtt.command_token"] == ""
    try:
        schema.validate({"mqtt.username": ""}, cur)
        raise AssertionError("accepted")
    except ConfigError as e:
        assert e.field == "mqtt.username" and "token or broker credentials" in e.reason, (e.field, e.reason)


def test_numbers_past_the_float_range_and_lone_surrogates_are_refused():
    # Issue 11.7: {"http.read_timeout_s": 1e999} was a 500 (OverflowError converting inf to int); a lone surrogate
    # in a name was stored and made every later /api/status and /api/config invalid UTF-8.
    import json

    inf = json.loads("1e999")
    for v in (inf, -inf, inf - inf):
        _rejects({"http.read_timeout_s": v}, "http.read_timeout_s", "expected an integer")
        _rejects({"sound.sensitivity_dbfs": v}, "sound.sensitivity_dbfs", "out of range")
    _rejects({"http.read_timeout_s": 10 ** 30}, "http.read_timeout_s", "out of range")
    _rejects({"device.name": json.loads('"\\ud800x"')}, "device.name", "surrogate")
    _rejects({"device.name": json.loads('"x\\udfff"')}, "device.name", "surrogate")
    assert schema.validate({"device.name": "K\u00fcche \u2603"})["device.name"] == "K\u00fcche \u2603"


def test_capture_pre_event_window_fits_the_accelerometer_ring():
    # the seconds before a capture's event come from the 500-frame ring, of which 4/5 may be held back
    on = {"capture.classes": "walk"}
    assert schema.validate(dict(on, **{"capture.pre_s": 6}))["capture.pre_s"] == 6  # 50 Hz: 6 s
    _rejects(dict(on, **{"capture.pre_s": 7}), "capture.pre_s", "gives at most 6 s at 50 Hz")
    assert schema.validate({"capture.pre_s": 20})["capture.pre_s"] == 20  # capture off: no limit
    cur = schema.validate(dict(on, **{"capture.pre_s": 5}))
    try:  # a faster rate that no longer holds it names the rate and says what to lower first
        schema.validate({"accel.rate_hz": 100}, cur)
        raise AssertionError("accepted 5 s before events at 100 Hz")
    except ConfigError as e:
        assert e.field == "accel.rate_hz" and "gives at most 2 s at 100 Hz" in e.reason, e.reason
        assert "lower capture.pre_s first" in e.reason, e.reason
    _rejects({"capture.sound_db": 85, "accel.rate_hz": 100}, "accel.rate_hz", "at most 2 s")
    assert schema.validate({"capture.sound_db": 85, "accel.rate_hz": 25, "capture.pre_s": 14})
    cur = schema.validate({"accel.rate_hz": 100})  # turning capture on names the key that turns it on
    for key, value in (("capture.sound_db", 80), ("capture.classes", "walk")):
        try:
            schema.validate({key: value}, cur)
            raise AssertionError("accepted")
        except ConfigError as e:
            assert e.field == key and "lower capture.pre_s first" in e.reason, (e.field, e.reason)


def test_a_string_value_interns_none_of_its_characters():
    # MicroPython interns every character a loop over a str yields, for good: a check that walked a value's
    # characters put each distinct one into the device's name pool (a config fuzz filled it: the pool's doubling,
    # a ~15 KB block, then failed on a busy heap). 150 distinct characters, made from bytes (chr() would intern
    # them itself), cost ~3.3 KB of names that way; checked as bytes, nothing stays (WebAssembly's collector
    # keeps a few hundred bytes it cannot tell are garbage).
    import gc

    schema.check_value("webhook.url", "warm-up")

    b = bytearray()
    for i in range(150):
        cp = 0x4E00 + 7 * i
        b += bytes((0xE0 | cp >> 12, 0x80 | (cp >> 6) & 0x3F, 0x80 | cp & 0x3F))
    value = b.decode()
    gc.collect()
    before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    assert schema.check_value("webhook.url", value) == value
    gc.collect()
    grew = (gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0) - before
    assert grew < 1024, grew
