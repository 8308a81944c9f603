"""The MQTT sink's rarely used parts, loaded only while they run (``lazy``) so their code and strings cost no
resident heap: Home Assistant discovery, the health message (once a minute), and commands: ``reload_model``,
``restart``, ``label``, ``label_set``, ``record_start``, ``record_stop`` (see ``mqtt_sink``). A recording is a
labelled time range being open: ``record_start`` opens it at now with the current label (``label_set``) or the one
given, ``record_stop`` closes it into a stored label (``store/meta.label_add``, as ``POST /api/labels``). The
current label and an open recording are kept in ``recording.json`` in the data directory, so a restart does not
lose them. (One module, not several: each lazily loaded module leaves its interned names behind; see docs/heap.md
"Interned names".) Each public function returns the messages to publish: ``[(topic, payload, retain, qos)]``.

Discovery is device-based: topic ``homeassistant/device/<id>/config``, retained; payload ``dev`` (identifiers,
name, maker, model, board, versions, serial, MAC and configuration URL where the board has them), ``o`` (origin,
``name`` required), ``avty_t`` (the retained online/offline topic that carries the last will), ``qos`` and
``cmps``: each component has ``p`` (platform) and ``uniq_id``; one with only ``p`` is removed (Home Assistant keeps
a component that is left out). Sensors read the live state topics (``<base>/state/...``, never the data topics a
backlog is replayed to), the diagnostics ``<base>/health``. The controls (label, recording, restart, reload model)
are listed only when Home Assistant's commands would be accepted: no ``mqtt.command_token`` (Home Assistant would
have to publish it in its retained config) and a broker that authenticates its clients; else, and for the device
triggers of classes the model before had, removals. It is returned as a list of small byte pieces that the
client sends as one message without joining them (no large contiguous block of RAM). The update entity (App) reads
``<base>/state/update`` (retained, sent with the health message): the app version that runs, whether it is on
trial or why it runs (``d.app``: ``bootstate``, ``ota``), and a link to the web UI's App update. It has no
install command: an update is a bundle signed with the device's key on the host that made it (``sensorbox deploy
--ota``, or the web UI), so Home Assistant has nothing to install, and the device looks for no updates itself:
the newest version it knows is the one it runs.
"""

import json
import time

import sensorbox

# Home Assistant's components as JSON text: "^" stands for the unique-id prefix, "~" for the base topic and "/".
# Long string constants, so that their keys and values are not interned on the device (MicroPython interns every
# name and every string constant of up to 10 characters, for good: docs/heap.md "Interned names").
_ACTIVITY = ('"activity":{"p":"sensor","name":"Activity","uniq_id":"^activity","stat_t":"~state/predictions",'
             '"val_tpl":"{{ value_json.label if value_json.label is defined else None }}","dev_cla":"enum",'
             '"ic":"mdi:run","ops":')  # + the classes
_CHANGE = ('"activity_change":{"p":"event","name":"Activity change","uniq_id":"^activity_change",'
           '"stat_t":"~state/events","ic":"mdi:swap-horizontal","val_tpl":"{% if value_json.type == '
           '\'class_change\' %}{{ {\'event_type\': value_json.to, \'from\': value_json[\'from\'], \'confidence\': '
           'value_json.confidence / 1000} | to_json }}{% endif %}","evt_typ":')  # + the classes
# the other sensors: "key;name;topic;value template;unit;device class;flags;icon", flags 1: a measurement,
# 2: a total that only grows, 4: a diagnostic, 8: disabled by default (the noisy ones)
_SENSORS = (
    "confidence;Activity confidence;state/predictions;(value_json.confidence * 100) | round(0) if "
    "value_json.confidence is defined else None;%;;1;",
    # diagnostics, from the health message (once a minute)
    "ip;IP address;health;value_json.ip;;;4;mdi:ip-network",
    "model;Model;health;value_json.model;;;4;mdi:brain",
    "mqtt_errors;MQTT errors;health;value_json.mqtt_errors;;;6;",
    "heap_used;Heap used;health;value_json.heap_used;B;data_size;13;",
    "loop_lag;Loop lag (p99);health;value_json.loop_lag_ms;ms;duration;13;",
    "uptime;Uptime;health;value_json.uptime_s;s;duration;13;",
    # the last: boards with Wi-Fi only (a MAC), listed whether or not the station is connected at that moment
    "rssi;Wi-Fi signal;health;value_json.rssi if value_json.rssi is defined else None;dBm;signal_strength;13;",
)
_SENSOR = '"%s":{"p":"sensor","name":"%s","uniq_id":"%s%s","stat_t":"%s%s","val_tpl":"{{ %s }}"'
# the controls, when Home Assistant's commands would be accepted; else removed (a component with only its platform)
_CONTROLS = (
    '"recording":{"p":"binary_sensor","name":"Recording","uniq_id":"^recording","stat_t":"~state/control",'
    '"val_tpl":"{{ \'ON\' if value_json.recording else \'OFF\' }}","json_attr_t":"~state/control",'
    '"ic":"mdi:record-rec"}',
    '"label":{"p":"text","name":"Label","uniq_id":"^label","cmd_t":"~cmd/label_set",'
    '"cmd_tpl":"{\\"label\\": {{ value | to_json }}}","stat_t":"~state/control",'
    '"val_tpl":"{{ value_json.label or \'\' }}","min":0,"max":40,"ic":"mdi:tag"}',
)
_BUTTONS = ("record_start;Start recording;,\"ic\":\"mdi:record\"", "record_stop;Stop recording;,\"ic\":\"mdi:stop\"",
            "reload_model;Reload model;,\"ent_cat\":\"config\",\"ic\":\"mdi:reload\"",
            "restart;Restart;,\"ent_cat\":\"config\",\"dev_cla\":\"restart\"")
# the app's update entity: its state from _UPDATE (below), no install command (module docstring); the release
# summary and link in the config too (Home Assistant sets them back to the config's when it applies a discovery
# update, which may come after the state message); + summary, link
_APP = ('"update":{"p":"update","name":"App","uniq_id":"^update","stat_t":"~state/update","dev_cla":"firmware",'
        '"ent_cat":"config","tit":"sensorbox app","rel_s":%s%s}')
_BUTTON = '"%s":{"p":"button","name":"%s","uniq_id":"%s%s","cmd_t":"%scmd/%s","pl_prs":"{}"%s}'
# a device trigger per class, "activity changed to <class>", keyed by a hash of its name (a class keeps its key);
# % formatting: key, base, class, class
_TRIGGER = ('"class_%s":{"p":"device_automation","atype":"trigger","t":"%sstate/events","type":"class_change",'
            '"stype":%s,"pl":%s,"val_tpl":"{{ value_json.to if value_json.type == \'class_change\' else \'\' }}"}')
_TRIGGER_GONE = '"class_%s":{"p":"device_automation"}'  # a class of the model before: removed


def _key(k):
    import binascii

    return "{:08x}".format(binascii.crc32(k.encode()))


def discovery(sink, why):
    """The discovery config (its payload a list of byte pieces) and the control state; with ``why`` 2 (Home
    Assistant's birth message: it has just connected, maybe after an outage of its own, and shows the values it
    had before as current) first ``{}`` on the state topics: "unknown" until the next live row."""
    d = sink.d
    i = d.device_id
    m = d.ml.model
    old = sink.classes
    sink.classes = m.classes if m is not None else None
    sink.announced += 1
    # Home Assistant may have restarted: the next live rows go out even if unchanged, but not within 1 s (it
    # applies a discovery update in a task of its own; a state sent at once could meet the entity before it); a
    # row waiting for its turn may name a class of the model before: dropped (the next live row replaces it)
    lv = sink._live
    lv[0] = lv[1] = lv[2] = lv[4] = lv[5] = lv[6] = None
    lv[3] = lv[7] = time.ticks_add(time.ticks_ms(), 1000 - d.config.get("mqtt.state_every_s") * 1000)
    classes = (list(m.classes) if m is not None else []) + ["unknown"]  # (pipeline.UNKNOWN)
    ip, rssi, mac = d.platform.wifi()
    import sys

    impl = sys.implementation
    v, said = _app_state(d)  # (an update's version: the app that runs; what the update entity says of it)
    v = json.dumps(v)
    hw = "{} (MicroPython {})".format(getattr(impl, "_machine", sys.platform),
                                      ".".join(str(x) for x in impl.version[:3]))
    b = json.dumps(sink.base + "/")[1:-1]  # the base topic inside JSON strings
    n = d.config.get("device.name")  # or sensorbox-XXXX while it is the default: two boxes never share a name
    n = "sensorbox-" + i[-4:] if n == "sensorbox" else n
    head = '{{"dev":{{"ids":["sensorbox_{0}"],"name":{1},"mf":"sensorbox","mdl":"sensorbox","mdl_id":"{2}",' \
           '"sw":{3},"sn":"{0}","hw":{4}'.format(i, json.dumps(n), d.platform.name, v, json.dumps(hw))
    if ip:
        head = '{},"cu":"{}"'.format(head, _url(d, ip))  # (a constant of 10 characters would be interned)
    if mac:
        head += ',"cns":[["mac","{}"]]'.format(mac)
    head += '}},"o":{{"name":"sensorbox","sw":{}}},"avty_t":"{}status","qos":1,"cmps":{{'.format(v, b)
    pre = "sb_" + i + "_"
    cs = json.dumps(classes) + "}"
    # one piece per component (sent as one message without joining them: no large block of RAM)
    out = [head.encode(), (_ACTIVITY.replace("^", pre).replace("~", b) + cs).encode(),
           (", " + _CHANGE.replace("^", pre).replace("~", b) + cs).encode(),
           (", " + _APP.replace("^", pre).replace("~", b) % (
               json.dumps(said), ',"rel_u":"{}#health"'.format(_url(d, ip)) if ip else "")).encode()]
    rows = _SENSORS[:-1] if mac is None else _SENSORS
    for k in ("leq", "lmax", "lmin", "l10", "l50", "l90"):  # Leq and Lmax on, the others off by default
        rows += ("{0};Sound level {1};state/soundlevel;value_json.{0} if value_json.{0} is defined else None;dB;"
                 "sound_pressure;{2};".format(k, k[0].upper() + k[1:], 1 if k in ("leq", "lmax") else 9),)
    for r in rows:
        k, n, t, e, u, dc, f, ic = r.split(";")
        f = int(f)
        x = _SENSOR % (k, n, pre, k, b, t, e)
        if u:
            x += ',"unit_of_meas":"{}"'.format(u)
        if dc:
            x += ',"dev_cla":"{}"'.format(dc) + (',"sug_dsp_prc":1' if u == "dB" else "")
        if f & 3:
            x += ',"stat_cla":"measurement"' if f & 1 else ',"stat_cla":"total_increasing"'
        if f & 4:
            x += ',"ent_cat":"diagnostic"'
        if f & 8:
            x += ',"en":false'
        if ic:
            x += ',"ic":"{}"'.format(ic)
        out.append((", " + x + "}").encode())
    cfg = d.config
    if cfg.get("mqtt.commands") and not cfg.get("mqtt.command_token") and sink._trusted:  # HA's would be accepted
        for t in _CONTROLS:
            out.append((", " + t.replace("^", pre).replace("~", b)).encode())
        for r in _BUTTONS:
            k, n, x = r.split(";")
            out.append((", " + _BUTTON % (k, n, pre, k, b, k, x)).encode())
    else:  # removed
        for k, t in (("recording", "binary_sensor"), ("label", "text")) + tuple((r[:r.index(";")], "button")
                                                                            for r in _BUTTONS):
            out.append((', "{}":{{"p":"{}"}}'.format(k, t)).encode())
    for k in classes:
        out.append((", " + _TRIGGER % (_key(k), b, json.dumps(k), json.dumps(k))).encode())
    for k in old or ():
        if k not in classes:  # Home Assistant keeps a component that is just left out: removed explicitly
            out.append((", " + _TRIGGER_GONE % _key(k)).encode())
    out.append(b"}}")
    base = sink.base
    msgs = [("homeassistant/device/{}/config".format(i), out, True, 1), _control(sink)]
    if why == 2:
        msgs.insert(0, (base + "/state/predictions", b"{}", False, 0))
        msgs.insert(0, (base + "/state/soundlevel", b"{}", False, 0))
    return msgs


def _url(d, a):
    # the web UI's address (Home Assistant's "Visit" link) at IP address ``a``
    port = d.platform.http_port(d.config.get("http.port"))
    return "http://{}{}/".format(a, "" if port == 80 else ":{}".format(port))


def _app_state(d):
    # (version, what Home Assistant's update entity says about it) of the app that runs
    a = getattr(d, "app", None) or {}  # (None: the bundle's own app, deployed over USB; bootstate._app)
    v = a.get("version") or sensorbox.__version__
    if a.get("trial"):
        return v, "on trial: kept once it has been healthy for a minute, else rolled back"
    return v, a.get("why") or "the app deployed over USB"


def _control(sink):
    rec = sink.rec
    return (sink.base + "/state/control", json.dumps({"label": rec[0], "recording": {"start": rec[1], "label": rec[2]}
                                                      if rec[1] else None}), True, 1)


# the health message: JSON text (its keys in a long string constant, not interned)
_HEALTH = ('{{"t":{},"uptime_s":{},"heap_free":{},"heap_used":{},"delivered":{},"lost_segments":{},'
           '"loop_lag_ms":{},"mqtt_errors":{},"ip":{},"model":{}{}}}')
# the update entity's state: the newest version the device knows is the one it runs (module docstring)
_UPDATE = '{{"installed_version":{0},"latest_version":{0},"release_summary":{1}{2}}}'


def health(sink):
    """The diagnostics message (``<base>/health``, retained) and the update entity's state
    (``<base>/state/update``, retained)."""
    import gc

    d = sink.d
    n = lost = 0
    for ob in sink.outboxes:
        n += ob.sent
        lost += ob.lost()
    ip, rssi, mac = d.platform.wifi()
    m = d.ml.model
    lag = d.lag  # the nearest-rank p99 of its recent samples (µs)
    k = min(lag.n, len(lag.samples))
    p99 = sorted(lag.samples[j] for j in range(k))[(k * 99 + 99) // 100 - 1] if k else 0
    v, said = _app_state(d)
    return [(sink.base + "/health", _HEALTH.format(
        d.platform.epoch_ms(), time.ticks_diff(time.ticks_ms(), d.health.boot_ticks) // 1000, gc.mem_free(),
        d.health.heap_used, n, lost, p99 / 1000, sink.errors, json.dumps(ip),
        json.dumps("{} {}".format(m.origin, m.info["sha256"][:8]) if m is not None else None),
        ',"rssi":{}'.format(rssi) if rssi is not None else ""), True, 0),
            (sink.base + "/state/update", _UPDATE.format(
                json.dumps(v), json.dumps(said), ',"release_url":"{}#health"'.format(_url(d, ip)) if ip else ""),
             True, 0)]


async def connect(sink, c):
    """Run once the client has connected. Commands without a token come only through a broker that authenticates
    its clients: the device checks that the broker refuses a CONNECT without credentials (CONNACK 4, bad user name
    or password, or 5, not authorised). True if it does; False if it let the probe in, or the probe failed."""
    from sensorbox.device.integrations.mqtt import MQTTClient

    p = MQTTClient(c.client_id + "-probe", c.host, c.port, ssl=c.ssl, timeout_ms=c.timeout_ms)
    try:
        await p.connect()
    except Exception as e:  # MQTTError (a refusal names its code), OSError, TimeoutError
        return str(e).endswith(("(code 4)", "(code 5)"))
    await p.disconnect()
    return False


def _same(a, b):
    # (as UTF-8 bytes: indexing a str interns the character as a name, for good: each one a message sent)
    if not isinstance(a, str):
        return False
    a = a.encode()
    b = b.encode()
    if len(a) != len(b):
        return False
    x = 0
    for i in range(len(a)):
        x |= a[i] ^ b[i]
    return x == 0


class _Body:
    # what http/json_body.read_json reads of a request
    def __init__(self, b):
        self.body = b


def _json(payload):
    """A command's JSON, checked as a request body is (``http/json_body.py``): UTF-8 without surrogates (escaped pairs,
    what JSON encoders send for characters beyond U+FFFF, become their character), bounded nesting, finite
    numbers. Raises ValueError with the reason."""
    from sensorbox.device import lazy
    from sensorbox.device.http.server import BadRequest

    try:
        return lazy.call("sensorbox.device.http.json_body", "read_json", _Body(payload))
    except BadRequest as e:
        raise ValueError(e.reason.replace("request body", "command"))


def command(sink, name, payload):
    """Run command ``name`` (payload: JSON bytes, or None when it was too large to take); returns the result
    message and, if the label or recording changed, the control state."""
    d = sink.d
    res = {"cmd": name, "ok": False}
    try:
        if payload is None:
            raise ValueError("command too large: at most 2048 bytes")
        body = _json(payload) if payload else {}
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        tok = d.config.get("mqtt.command_token")
        if tok:
            if not _same(body.get("token"), tok):
                raise ValueError("not authorised")
        elif not sink._trusted:
            raise ValueError("not authorised: the broker lets clients in without credentials (set "
                             "mqtt.command_token, or give the broker accounts)")
        body.pop("token", None)
        if name == "reload_model":
            d.ml.model = d.ml.error = None
            d.supervisor.restart(("pipeline",))  # the pipeline restarts and loads the model
        elif name == "restart":
            d.log.warning("app", "restart requested over MQTT")
            d.log.flush()
            import asyncio

            async def later():
                await asyncio.sleep_ms(500)  # the result goes out first
                d.platform.reset()

            asyncio.create_task(later())
        elif name == "label":
            res["label"] = _label_add(d, body)
        elif name in ("label_set", "record_start", "record_stop"):
            _record(sink, name, body, res)
        elif name == "clip":  # an audio clip now (store/clips.py), as POST /api/clips
            c = d.store.clip
            if c is None:
                raise ValueError("clips are off: set clip.enabled first")
            if not c.trigger(1, 0):
                raise ValueError("a clip is being recorded; try again when it ends")
            res["clip"] = {"length_ms": c.n * 1000 // c.rate, "pre_ms": c._pre_n * 1000 // c.rate, "rate_hz": c.rate}
        else:
            raise ValueError("unknown command")
        res["ok"] = True
        sink.commands += 1
    except (ValueError, OSError) as e:  # QueryError is a ValueError; OSError: recording.json not written
        sink.refused += 1
        res["error"] = str(e)
        d.log.warning("mqtt", "command {} refused: {}".format(name[:40], e))
    out = [(sink.base + "/cmd_result", json.dumps(res), False, 1)]
    if res["ok"] and name in ("label_set", "record_start", "record_stop"):
        out.append(_control(sink))
    return out


def _record(sink, name, body, res):
    """label_set, record_start, record_stop. ``sink.rec`` is [current label, start of the open recording or None,
    its label]; it is saved in ``recording.json`` after every change."""
    d = sink.d
    rec = sink.rec
    if name == "record_stop":
        if rec[1] is None:
            raise ValueError("no recording is open")
        res["label"] = _label_add(d, {"start": rec[1], "end": max(d.platform.epoch_ms(), rec[1] + 1),
                                      "label": rec[2], "overlap": True})  # what was recorded is kept
        rec[1] = rec[2] = None
    else:
        lab = body.get("label", rec[0] if name == "record_start" else None)
        if name == "label_set" and lab == "":
            lab = None  # Home Assistant's text entity clears it so
        if lab is not None and not (isinstance(lab, str) and 0 < len(lab) <= 40 and min(lab.encode()) >= 32):
            raise ValueError("label must be a name of 1 to 40 printable characters")  # as label_add says it
        if name == "label_set":
            rec[0] = res["label"] = lab
        elif rec[1] is not None:
            raise ValueError("a recording is already open (label {}, since {})".format(rec[2], rec[1]))
        elif lab is None:
            raise ValueError("no label: set one with label_set or give \"label\"")
        else:
            rec[1] = d.platform.epoch_ms()
            rec[2] = lab
            res["recording"] = {"start": rec[1], "label": lab}
    d.store.pin_open = -1 if rec[1] is None else rec[1]  # an open recording keeps its data (store/core: Pins)
    tmp = d.platform.data_dir + "/recording.json"
    with open(tmp + ".tmp", "w") as f:
        f.write(json.dumps(rec))
    import os

    os.rename(tmp + ".tmp", tmp)


def restore(sink):
    """Load the current label and any open recording saved before a restart (anything else in recording.json is
    set aside as ``.bad``: ``device/files.py``)."""
    from sensorbox.device import lazy

    v = lazy.call("sensorbox.device.files", "load_json", sink.d.platform.data_dir + "/recording.json", sink.d.log,
                  "recording_ok")
    if v is not None:
        sink.rec = v
        if v[1] is not None:
            sink.d.store.pin_open = v[1]


def _label_add(d, body):
    from sensorbox.device import lazy

    return lazy.call("sensorbox.device.store.meta", "label_add", d.store, body)
