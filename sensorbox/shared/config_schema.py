"""The device configuration schema and its validator: one declaration, used by the device, the host and the UI.

A configuration is a flat mapping of dotted keys (``"accel.rate_hz"``) to values. Each key is declared once in
``SPECS`` with its kind, default, bounds and whether a change applies live or needs a restart. ``validate``
checks a partial update against the schema and the current values and returns the merged configuration, or
raises ``ConfigError`` naming the key and the reason. Nothing is ever half-applied.

``SPECS`` is a few strings, one block per component, a line per key: ``key kind default [low high | choices]
[reboot] [@service]``, where default and choices are JSON tokens without spaces. Each block starts with
``@service``: the supervised service (``supervisor``) that a change of its keys restarts (``@-``: none; the key is
read where it is used, or with ``reboot`` applies at the next start); a key's own ``@service`` (or several:
``@mqtt,wifi``) overrides its block's (``restarts``). A table of tuples would cost the device ~220 bytes of heap per key; these strings cost
their length, and a key's entry is parsed only when it is checked. Help texts are in config_docs.py.
"""

from sensorbox.shared import InputError

# Kinds of value.
INT = "int"
FLOAT = "float"
BOOL = "bool"
STR = "str"  # low/high bound the length
CHOICE = "choice"
SECRET = "secret"  # a string that is accepted on write and never returned

# an entry's apply: 0 applied without a restart (the services that use the key restart themselves), or
REBOOT = 1  # stored at once, takes effect after a restart

# Each string is one block of heap while the schema is loaded (for a config update), so each stays under ~460
# bytes and its lines are not padded into columns: a busy heap at the app's size often had no block of ~1 KB (the
# four strings of 0.8-1.1 KB this was failed 24 times a minute in the every-feature soak at 152wK, rescued by
# lazy's reserve; two failures in a row gave PUT /api/config a 503). A new key goes into its component's block,
# or a new block (same ``@service``) when that one would pass ~460 bytes.
SPECS = (
    # the device: its name, HTTP server, log, WiFi fallback and clock (each read where it is used: no restart)
    """
@-
device.name str "sensorbox" 1 32 @mqtt,wifi
http.port int 80 1 65535 reboot
http.read_timeout_s int 10 1 120
http.cors_origin str "" 0 100
log.level choice "info" ["debug","info","warning","error"]
log.file_kb int 32 4 512
wifi.fallback_s int 300 0 86400
time.ntp_host str "" 0 64
""",
    # the board's wiring: pins and the SD card (all applied at the next start)
    """
@-
board.sdcard str "" 0 40 reboot
board.reset_pin int -1 -1 48 reboot
board.i2c_sda int -1 -1 48 reboot
board.i2c_scl int -1 -1 48 reboot
board.i2c_freq int 400000 10000 1000000 reboot
board.i2s_sck int -1 -1 48 reboot
board.i2s_ws int -1 -1 48 reboot
board.i2s_sd int -1 -1 48 reboot
board.clip_ring_ms int 0 0 3000 @store
""",
    # the accelerometer and its simulated replay (the accel sampler)
    """
@accel
accel.enabled bool true
accel.rate_hz choice 50 [25,50,100]
accel.range_g choice 8 [2,4,8,16]
accel.gyro bool false reboot @-
accel.poll_ms int 1000 5 1000
accel.i2c_addr choice 106 [106,107]
sim.replay_gap_every_s int 0 0 86400
sim.replay_gap_ms int 500 0 60000
sim.replay_noise int 0 0 4096
""",
    # the microphone and the simulated one (the mic sampler)
    """
@mic
mic.enabled bool true
mic.rate_hz choice 16000 [8000,16000]
mic.poll_ms int 50 5 250
mic.channel choice "left" ["left","right"]
sim.mic_signal choice "tone+noise" ["tone","noise","tone+noise","silence"]
sim.mic_tone_hz int 1000 20 3980
sim.mic_tone_dbfs int -20 -90 0
sim.mic_noise_dbfs int -50 -90 0
sim.mic_wav str "" 0 200
""",
    # the sound meter and sound classifier (soundmeter)
    """
@soundmeter
sound.interval_s int 1 1 300
sound.sensitivity_dbfs float -26.0 -80 0
sound.weighting choice "A" ["A","Z"]
sound.time_weighting choice "fast" ["fast","slow"]
sound.classify bool false
sound.class_smooth int 3 1 16
sound.class_unknown_permille int 500 0 1000
""",
    # the analysis pipeline: windows, model, smoothing (pipeline)
    """
@pipeline
ml.enabled bool true
ml.window choice 128 [32,64,128,256]
ml.hop int 64 8 256
ml.smooth int 3 1 16
ml.unknown_permille int 500 0 1000
ml.model_max_kb int 16 1 64
""",
    # the store: flushing, free flash, compression, each raw resource's budget (store)
    """
@store
store.flush_ms int 1000 200 5000
store.min_free_kb int 64 0 65536
store.compress bool true
store.accel_kb int 512 0 1048576
store.features_kb int 128 0 1048576
store.predictions_kb int 64 0 1048576
store.soundlevel_kb int 64 0 1048576
store.soundclass_kb int 64 0 1048576
store.events_kb int 64 0 1048576
""",
    # the store's rollups, event capture and audio clips (store)
    """
@store
store.soundlevel_1m_kb int 228 0 1048576
store.soundlevel_1h_kb int 294 0 1048576
store.predictions_1m_kb int 222 0 1048576
store.predictions_1h_kb int 280 0 1048576
capture.classes str "" 0 200
capture.sound_db int 0 0 140
capture.pre_s int 4 0 20
capture.post_s int 10 1 600
capture.only bool false
clip.enabled bool false
clip.length_ms int 2000 1000 3000
clip.pre_ms int 0 0 3000
store.clips_kb int 256 0 1048576
""",
    # MQTT: broker, connection, topics, commands, pacing (the mqtt sink)
    """
@mqtt
mqtt.enabled bool false
mqtt.host str "" 0 64
mqtt.port int 1883 1 65535
mqtt.tls bool false
mqtt.tls_ca str "" 0 4000
mqtt.username str "" 0 64
mqtt.password secret "" 0 128
mqtt.prefix str "sensorbox" 1 64
mqtt.commands bool false
mqtt.command_token secret "" 0 64
mqtt.replay_ms int 20 0 1000
mqtt.state_every_s int 10 0 3600
""",
    # webhooks: the first endpoint and what all share (the webhook sink)
    """
@webhook
webhook.enabled bool false
webhook.url str "" 0 200
webhook.secret secret "" 0 128
webhook.resources str "events" 1 40
webhook.events str "" 0 100
webhook.timeout_s int 10 1 120
webhook.retry_max_s int 300 1 3600
webhook.tls_ca str "" 0 4000
""",
    # webhooks: the second and third endpoints (the webhook sink)
    """
@webhook
webhook.2.url str "" 0 200
webhook.2.secret secret "" 0 128
webhook.2.resources str "events" 1 40
webhook.2.events str "" 0 100
webhook.3.url str "" 0 200
webhook.3.secret secret "" 0 128
webhook.3.resources str "events" 1 40
webhook.3.events str "" 0 100
""")



#: Frames in the microphone's sample ring (sensorbox/device/app.py allocates it once, at boot: 32 ms at 16 kHz).
#: It holds only what the sound meter has not processed yet: the meter reads the microphone's FIFO itself, one
#: 256-frame batch per chunk it processes, so ``mic.poll_ms`` is bounded by the FIFO (the sampler reads it at
#: least twice per FIFO span), not by this ring. (It was 1024 frames, and the poll at most a third of it: 21 ms.)
MIC_RING_FRAMES = 512

# The accelerometer's sample ring: 500 frames (sensorbox/device/boot.py), of which event capture with
# ``capture.only`` leaves the newest ``capture.pre_s`` + 2 seconds unread for triggers still to come
# (``store.capture.HOLD_S``: a prediction is known a window after its first frame): at most 4/5 of the ring,
# the rest is the store's room between reads (``_check_capture``). (Named where they are used: a module of at
# most 29 globals grows its table no further than 464 bytes when a config update loads it.)


class ConfigError(InputError):
    """A configuration value was rejected: ``field`` names the key, ``reason`` says why (its text: both)."""

    def __str__(self):
        return "{}: {}".format(self.field, self.reason)


def entry(key):
    """(key, kind, default, low, high | choices, apply) for ``key``, or None."""
    for spec in SPECS:
        i = spec.find("\n" + key + " ")
        if i >= 0:
            e = _View._spec_line(spec[i + 1:spec.find("\n", i + 1)])
            return e if e[0] == key else None
    return None


def entries():
    """Every entry, in declaration order."""
    for spec in SPECS:
        for line in spec.split("\n"):
            if line.strip() and line[0] != "@":  # (a block's service)
                yield _View._spec_line(line)


def restarts(key):
    """The services (``supervisor``) that a change of ``key`` restarts: the key's own ``@service`` (names
    separated by ","), else its block's; () when it restarts none (or is not a key)."""
    for spec in SPECS:
        i = spec.find("\n" + key + " ")
        if i >= 0:
            line = spec[i + 1:spec.find("\n", i + 1)]
            j = line.find(" @")
            s = line[j + 2:] if j >= 0 else spec[2:spec.find("\n", 1)]
            return () if s == "-" else tuple(s.split(","))
    return ()


def defaults():
    """A new dict holding every key's default."""
    return {e[0]: e[2] for e in entries()}


def needs_reboot(key):
    e = entry(key)
    return e is not None and e[5] == REBOOT


def check_value(key, value):
    """Return ``value`` converted to the key's kind, or raise ConfigError."""
    e = entry(key) if isinstance(key, str) else None
    if e is None:
        raise ConfigError("unknown key", key)
    kind, low, high = e[1], e[3], e[4]
    isbool = value is True or value is False  # bool is an int subclass everywhere: keep it apart
    if kind == BOOL:
        if isbool:
            return value
        raise ConfigError("expected true or false, got {}".format(_View._show(value)), key)
    if kind == INT:
        if isinstance(value, float) and value - value == 0 and value == int(value):  # (inf, nan: not converted)
            value = int(value)
        if isbool or not isinstance(value, int):
            raise ConfigError("expected an integer, got {}".format(_View._show(value)), key)
        if value < low or value > high:
            raise ConfigError("{} is out of range {}..{}".format(value, low, high), key)
        return value
    if kind == FLOAT:
        if isbool or not isinstance(value, (int, float)):
            raise ConfigError("expected a number, got {}".format(_View._show(value)), key)
        value = float(value)
        if value != value or value < low or value > high:
            raise ConfigError("{} is out of range {}..{}".format(value, low, high), key)
        return value
    if kind == STR or kind == SECRET:
        return _View._check_text(key, value, e)
    if kind == CHOICE:
        for c in high:
            if value == c and isbool == (c is True or c is False):
                return c
        raise ConfigError("{} is not one of {}".format(_View._show(value), ", ".join(str(c) for c in high)), key)
    raise ConfigError("schema kind {} unknown".format(kind), key)


def validate(update, current=None):
    """Validate the partial ``update`` against the schema and return the merged configuration.

    ``current`` is the configuration in force (defaults when None). Raises ConfigError for the first bad key in
    sorted order; neither argument is modified.
    """
    merged = dict(current) if current is not None else defaults()
    merged.update(check_update(update, merged.get))
    return merged


class _View:
    # the configuration as it would be after an update: the update's checked values over get(key). And the
    # module's private helpers, called through the class (_View._spec_line(line), ...): fewer module globals, whose
    # table an import grows in one block (a config update's: at 28 globals 464 bytes, at 23 368, the block a
    # cut-up heap at the core heap lacked most often; tests/host/test_heap_blocks.py)
    def __init__(self, values, get):
        self.values = values
        self.current = get

    def get(self, key, default=None):
        v = self.values.get(key, self)
        return self.current(key, default) if v is self else v

    def _spec_line(line):  # (a line of SPECS as an entry)
        import json

        p = line.split()
        kind = p[1]
        default = json.loads(p[2])
        low = high = None
        apply = REBOOT if "reboot" in p[3:] else 0  # (live)
        if kind == CHOICE:
            high = tuple(json.loads(p[3]))
        elif kind != BOOL:
            low = json.loads(p[3])
            high = json.loads(p[4])
        return (p[0], kind, default, low, high, apply)

    def _check_text(key, value, e):
        # check_value's strings (apart: a function's bytecode is one block, which a cut-up heap lacks at ~540 bytes)
        low, high = e[3], e[4]
        if not isinstance(value, str):
            raise ConfigError("expected a string, got {}".format(_View._show(value)), key)
        if len(value) < low or len(value) > high:
            raise ConfigError("length {} is out of range {}..{}".format(len(value), low, high), key)
        # Checked as UTF-8 bytes, not characters: MicroPython interns every character a loop over a str yields,
        # for good, so any value's characters would fill the name pool (docs/heap.md "Interned names"). A lone
        # surrogate encodes as ED A0..BF (MicroPython keeps them so; CPython with "surrogatepass").
        b = value.encode("utf-8", "surrogatepass")
        for i in range(len(b)):
            if b[i] < 32:
                raise ConfigError("control characters are not allowed", key)
            if b[i] == 0xED and i + 1 < len(b) and b[i + 1] >= 0xA0:
                raise ConfigError("a lone UTF-16 surrogate is not text", key)
        if key in ("mqtt.tls_ca", "webhook.tls_ca") and value and value[:1] not in ("/", "."):  # (not a file's
            # path on the device: PEM text, checked with the other integration settings; http/body.py alike)
            from sensorbox.shared.integration_settings import ca_problem

            why = ca_problem(value, b)
            if why:
                raise ConfigError(why, key)
        return value

    def _check_capture(config, update):
        # A window is cut every ml.hop frames: a hop longer than the window would skip frames (the pipeline used to
        # clamp it silently). Named: the key the update changes (ml.window when both or neither).
        w = config.get("ml.window")
        h = config.get("ml.hop")
        if w is not None and h is not None and h > w:
            key = "ml.hop" if "ml.hop" in update and "ml.window" not in update else "ml.window"
            raise ConfigError("ml.hop ({}) must not exceed ml.window ({}): {}".format(
                h, w, "lower ml.hop first" if key == "ml.window" else "a window is cut every ml.hop frames"), key)
        # the pre-event window comes from the accelerometer's ring (500 frames, 2 s held: above): named, the key being
        # changed
        pre = config.get("capture.pre_s")
        rate = config.get("accel.rate_hz")
        on = (config.get("capture.classes") or "").strip() or config.get("capture.sound_db")
        if on and pre is not None and rate and (pre + 2) * rate > 400:
            key = "capture.pre_s"  # (named: the key the update changes, capture.pre_s when that is among them)
            for k in ("capture.classes", "capture.sound_db", "accel.rate_hz"):
                if k in update and "capture.pre_s" not in update:
                    key = k
            raise ConfigError("{} s before an event: the accelerometer's ring gives at most {} s at {} Hz{}".format(
                pre, 400 // rate - 2, rate, ": lower capture.pre_s first" if key != "capture.pre_s" else ""), key)

    def _check_clips(config, update):
        # A clip's pre-trigger audio comes from a ring the board has RAM for (board.clip_ring_ms: its profile's) and
        # is part of the clip's length. Named: the key the update changes (clip.pre_ms when that is among them).
        pre = config.get("clip.pre_ms")
        ring = config.get("board.clip_ring_ms")
        n = config.get("clip.length_ms")
        if pre and config.get("clip.enabled") and (pre > ring or pre >= n):
            key = "clip.pre_ms"
            for k in ("clip.enabled", "board.clip_ring_ms", "clip.length_ms"):
                if k in update and key not in update:
                    key = k
            raise ConfigError("clip.pre_ms ({} ms) must be {} ({} ms)".format(pre, "at most board.clip_ring_ms, the "
                              "ring this board has RAM for" if pre > ring else "under clip.length_ms",
                              ring if pre > ring else n), key)

    def _check_integrations(config, update):
        # What the MQTT and webhook sinks would only find out when they start: refused here, naming the key.
        for p in ("webhook.", "webhook.2.", "webhook.3."):
            url = config.get(p + "url")
            # (the checks' module is loaded only when a webhook is configured or its resources change: config
            # updates stay light; a bad resources value is never stored, to be found only when a URL is set)
            if url or p + "resources" in update:
                from sensorbox.shared.integration_settings import parse_url, webhook_resources

                try:
                    if url:
                        parse_url(url)
                except ValueError as e:
                    raise ConfigError(str(e), p + "url")
                try:
                    webhook_resources(config.get(p + "resources") or "", p + "resources")
                except ValueError as e:
                    raise ConfigError(str(e).partition(": ")[2] or str(e), p + "resources")
        pre = config.get("mqtt.prefix")
        if pre is not None and ("+" in pre or "#" in pre or pre.startswith("/") or pre.endswith("/") or "//" in pre):
            raise ConfigError("a topic prefix without wildcards (+ #) or empty levels, e.g. sensorbox", "mqtt.prefix")
        # commands carry the token, or come through a broker that authenticates clients (the device logs in)
        if config.get("mqtt.commands") and not config.get("mqtt.command_token") and not config.get("mqtt.username"):
            for k in ("mqtt.command_token", "mqtt.username"):
                if k in update and "mqtt.commands" not in update:  # named: the key being changed
                    raise ConfigError(
                        "mqtt.commands is on and needs a token or broker credentials: turn it off first", k)
            raise ConfigError("set mqtt.command_token first, or mqtt.username (a broker that "
                              "authenticates its clients): commands need one to be authorised", "mqtt.commands")

    def _show(value):
        s = repr(value)
        return s if len(s) <= 40 else s[:37] + "..."


def check_update(update, get, values=None):
    """The values of the partial ``update``, converted to their kinds and checked one by one and together (the
    checks across keys run on the update over ``get(key, default)``, the configuration in force). Raises
    ConfigError for the first bad key in sorted order. No copy of the whole configuration is made: the device
    checks an update with this, not ``validate``. ``values``: the dict the values go into (``update`` itself: they
    are converted in place, no second table of a whole-config update's ~80 keys, 1.5 KB on the unix port)."""
    if not isinstance(update, dict):
        raise ConfigError("expected a JSON object of key: value", "(body)")
    if values is None:
        values = {}
    for key in sorted(update, key=str):
        if not isinstance(key, str):
            raise ConfigError("keys must be strings", str(key))
        values[key] = check_value(key, update[key])
    view = _View(values, get)
    _View._check_capture(view, update)  # (ml.window/ml.hop, then capture: before the integrations, in the keys' order)
    _View._check_clips(view, update)
    _View._check_integrations(view, update)
    sd = view.get("board.sdcard")
    if sd:
        try:
            sd_args(sd)
        except ValueError as e:
            raise ConfigError(str(e), "board.sdcard")
    return values


def sd_args(spec):
    """``machine.SDCard`` arguments for a ``board.sdcard`` value: "mmc" (the SD/MMC slot 1, 1 data line, as most boards
    with a slot wire it), "mmc4" (4 lines), "spi:SCK,MOSI,MISO,CS" (SPI slot 2 on those GPIOs). ValueError naming
    what is expected."""
    # the forms, each ``name=slot,width`` or ``name=slot,`` and the SPI pins' argument names (in one string: the
    # device interns none of its short words, SDCard's arguments only when it mounts a card)
    for form in "mmc=1,1 mmc4=1,4 spi:=2,sck,mosi,miso,cs".split(" "):
        name, _, v = form.partition("=")
        v = v.split(",")
        if not name.endswith(":"):  # (not name[-1]: indexing a str interns the character, "4" of mmc4)
            if spec == name:
                return {"slot": int(v[0]), "width": int(v[1])}
        elif spec.startswith(name):
            p = spec[len(name):].split(",")
            pins = [int(x) for x in p if x.strip().isdigit()]
            if len(p) == 4 and len(pins) == 4 and max(pins) <= 48 and len(set(pins)) == 4:
                out = {"slot": int(v[0])}
                for i in range(4):
                    out[v[i + 1]] = pins[i]
                return out
    raise ValueError("expected mmc, mmc4 or spi:SCK,MOSI,MISO,CS (GPIOs, e.g. spi:18,23,19,5)")


