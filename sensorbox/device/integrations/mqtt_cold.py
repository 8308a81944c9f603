"""The MQTT sink's rarely used parts, loaded only while they run (``lazy``) so their code and strings cost no
resident heap: Home Assistant discovery, the health message (once a minute), and commands: ``reload_model``,
``restart``, ``label``, ``label_set``, ``record_start``, ``record_stop`` (see ``mqtt_sink``). A recording is a
labelled time range being open: ``record_start`` opens it at now with the current label (``label_set``) or the one
given, ``record_stop`` closes it into a stored label (``store/meta.label_add``, as ``POST /api/labels``). The
current label and an open recording are kept in ``recording.json`` in the data directory, so a restart does not
lose them. (One module, not several: each lazily loaded module leaves its interned names behind; see README
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
client sends as one message without joining them (no large contiguous block of RAM). An update entity waits for app
updates (there are none yet: a firmware/bundle update path would add ``p: update`` with ``installed_version``).
"""

import json
import time

import sensorbox

_UNKNOWN = "unknown"  # pipeline.UNKNOWN: the class of a prediction below the confidence threshold


def name(d):
    """The device's name for integrations: ``device.name``, or ``sensorbox-XXXX`` (the id's last 4 characters) while
    it is the default, so two boxes never share a name (nor Home Assistant entity ids)."""
    n = d.config.get("device.name")
    return "sensorbox-" + d.device_id[-4:] if n == "sensorbox" else n


def net(d):
    """(IP address, RSSI in dBm, MAC) of the board's Wi-Fi, None for what it does not have; on the unix port the
    address the web server listens on."""
    try:
        import network
    except ImportError:
        h = getattr(d.platform, "http_host", None) or "127.0.0.1"
        return ("127.0.0.1" if h == "0.0.0.0" else h), None, None
    sta = network.WLAN(network.STA_IF)
    mac = ":".join("{:02x}".format(b) for b in sta.config("mac"))
    if sta.isconnected():
        return sta.ifconfig()[0], sta.status("rssi"), mac
    ap = network.WLAN(network.AP_IF)
    return (ap.ifconfig()[0] if ap.active() else None), None, mac


def _s(c, key, name, topic, tpl, unit=None, dcla=None, diag=False, off=False):
    # a sensor component
    x = {"p": "sensor", "name": name, "uniq_id": c[0] + key, "stat_t": c[1] + topic, "val_tpl": tpl}
    if unit:
        x["unit_of_meas"] = unit
        x["stat_cla"] = "measurement"
    if dcla:
        x["dev_cla"] = dcla
    if diag:
        x["ent_cat"] = "diagnostic"
    if off:
        x["en"] = False  # disabled by default: the user turns it on in Home Assistant
    c.append((key, x))
    return x


def _tpl(key, expr=None):
    # a value template for a key of a state message that may be {} (unknown after a reconnect)
    return "{{{{ {} if value_json.{} is defined else None }}}}".format(expr or "value_json." + key, key)


def commands_usable(sink):
    """True when Home Assistant's commands (which carry no token) would be accepted."""
    cfg = sink.d.config
    return bool(cfg.get("mqtt.commands") and not cfg.get("mqtt.command_token") and sink.trusted)


def discovery(sink, why):
    """The discovery config (its payload a list of byte pieces) and the control state; with ``why`` 2 (Home
    Assistant's birth message: it has just connected, maybe after an outage of its own, and shows the values it
    had before as current) first ``{}`` on the state topics: "unknown" until the next live row."""
    d = sink.d
    base = sink.base
    i = d.device_id
    v = sensorbox.__version__
    m = d.model
    old = sink.classes
    sink.classes = m.classes if m is not None else None
    sink.announced += 1
    # Home Assistant may have restarted: the next live rows go out even if unchanged, but not within 1 s (it
    # applies a discovery update in a task of its own; a state sent at once could meet the entity before it); a
    # row waiting for its turn may name a class of the model before: dropped (the next live row replaces it)
    lv = sink.live
    lv[0] = lv[1] = lv[2] = lv[4] = lv[5] = lv[6] = None
    lv[3] = lv[7] = time.ticks_add(time.ticks_ms(), 1000 - d.config.get("mqtt.state_every_s") * 1000)
    classes = (list(m.classes) if m is not None else []) + [_UNKNOWN]
    ip, rssi, mac = net(d)
    import sys

    impl = sys.implementation
    dev = {"ids": ["sensorbox_" + i], "name": name(d), "mf": "sensorbox", "mdl": "sensorbox",
           "mdl_id": d.platform.name, "sw": v, "sn": i,
           "hw": "{} (MicroPython {})".format(getattr(impl, "_machine", sys.platform),
                                              ".".join(str(x) for x in impl.version[:3]))}
    if ip:
        port = d.platform.http_port(d.config.get("http.port"))
        dev["cu"] = "http://{}{}/".format(ip, "" if port == 80 else ":{}".format(port))
    if mac:
        dev["cns"] = [["mac", mac]]
    head = {"dev": dev, "o": {"name": "sensorbox", "sw": v}, "avty_t": base + "/status", "qos": 1}
    c = ["sb_" + i + "_", base + "/"]  # (uniq_id prefix, topic prefix), then (key, component) pairs
    x = _s(c, "activity", "Activity", "state/predictions", _tpl("label"), dcla="enum")
    x["ops"] = classes
    x["ic"] = "mdi:run"
    _s(c, "confidence", "Activity confidence", "state/predictions",
       _tpl("confidence", "(value_json.confidence * 100) | round(0)"), "%")
    for k, n, off in (("leq", "Leq", False), ("lmax", "Lmax", False), ("lmin", "Lmin", True), ("l10", "L10", True),
                      ("l50", "L50", True), ("l90", "L90", True)):
        _s(c, k, "Sound level " + n, "state/soundlevel", _tpl(k), "dB", "sound_pressure", off=off)["sug_dsp_prc"] = 1
    c.append(("activity_change", {
        "p": "event", "name": "Activity change", "uniq_id": c[0] + "activity_change", "stat_t": base + "/state/events",
        "evt_typ": classes, "ic": "mdi:swap-horizontal",
        "val_tpl": "{% if value_json.type == 'class_change' %}{{ {'event_type': value_json.to, 'from': "
                   "value_json['from'], 'confidence': value_json.confidence / 1000} | to_json }}{% endif %}"}))
    import binascii

    for k in classes:  # device triggers, "activity changes to <class>": keyed by the name (a class keeps its key)
        c.append(("class_{:08x}".format(binascii.crc32(k.encode())), {
            "p": "device_automation", "atype": "trigger", "t": base + "/state/events", "type": "class_change",
            "stype": k, "pl": k, "val_tpl": "{{ value_json.to if value_json.type == 'class_change' else '' }}"}))
    for k in old or ():  # a class of the model before: its trigger removed (Home Assistant keeps what is omitted)
        if k not in classes:
            c.append(("class_{:08x}".format(binascii.crc32(k.encode())), {"p": "device_automation"}))
    # diagnostics, from the health message (once a minute); the noisy ones disabled by default
    _s(c, "ip", "IP address", "health", "{{ value_json.ip }}", diag=True)["ic"] = "mdi:ip-network"
    if rssi is not None:
        _s(c, "rssi", "Wi-Fi signal", "health", "{{ value_json.rssi }}", "dBm", "signal_strength", True, True)
    _s(c, "model", "Model", "health", "{{ value_json.model }}", diag=True)["ic"] = "mdi:brain"
    _s(c, "mqtt_errors", "MQTT errors", "health", "{{ value_json.mqtt_errors }}", diag=True)["stat_cla"] = \
        "total_increasing"
    _s(c, "heap_used", "Heap used", "health", "{{ value_json.heap_used }}", "B", "data_size", True, True)
    _s(c, "loop_lag", "Loop lag (p99)", "health", "{{ value_json.loop_lag_ms }}", "ms", "duration", True, True)
    _s(c, "uptime", "Uptime", "health", "{{ value_json.uptime_s }}", "s", "duration", True, True)
    # controls, only when Home Assistant's commands would be accepted; else listed as removed (a component left out
    # of a device's discovery stays in Home Assistant: one with only its platform is removed)
    ok = commands_usable(sink)
    if ok:
        _s(c, "recording", "Recording", "state/control", "{{ 'ON' if value_json.recording else 'OFF' }}")
        c[-1][1].update({"p": "binary_sensor", "json_attr_t": base + "/state/control", "ic": "mdi:record-rec"})
        c.append(("label", {"p": "text", "name": "Label", "uniq_id": c[0] + "label", "cmd_t": base + "/cmd/label_set",
                            "cmd_tpl": "{\"label\": {{ value | to_json }}}", "stat_t": base + "/state/control",
                            "val_tpl": "{{ value_json.label or '' }}", "min": 0, "max": 40, "ic": "mdi:tag"}))
    else:
        c.append(("recording", {"p": "binary_sensor"}))
        c.append(("label", {"p": "text"}))
    for k, n, cat, ic in (("record_start", "Start recording", None, "mdi:record"),
                          ("record_stop", "Stop recording", None, "mdi:stop"),
                          ("reload_model", "Reload model", "config", "mdi:reload"),
                          ("restart", "Restart", "config", None)):
        b = {"p": "button"}
        if ok:
            b.update({"name": n, "uniq_id": c[0] + k, "cmd_t": base + "/cmd/" + k, "pl_prs": "{}"})
            if cat:
                b["ent_cat"] = cat
            if ic:
                b["ic"] = ic
            else:
                b["dev_cla"] = "restart"
        c.append((k, b))
    out = [json.dumps(head)[:-1].encode() + b',"cmps":{']
    for k in range(2, len(c)):
        out.append('{}"{}":{}'.format("," if k > 2 else "", c[k][0], json.dumps(c[k][1])).encode())
    out.append(b"}}")
    msgs = [("homeassistant/device/{}/config".format(i), out, True, 1), _control(sink)]
    if why == 2:
        msgs.insert(0, (base + "/state/predictions", b"{}", False, 0))
        msgs.insert(0, (base + "/state/soundlevel", b"{}", False, 0))
    return msgs


def _control(sink):
    rec = sink.rec
    return (sink.base + "/state/control", json.dumps({"label": rec[0], "recording": {"start": rec[1], "label": rec[2]}
                                                      if rec[1] else None}), True, 1)


def health(sink):
    """The diagnostics message (``<base>/health``, retained)."""
    import gc

    d = sink.d
    n = lost = 0
    for ob in sink.outboxes:
        n += ob.sent
        lost += ob.lost()
    ip, rssi, mac = net(d)
    m = d.model
    h = {"t": d.platform.epoch_ms(), "uptime_s": time.ticks_diff(time.ticks_ms(), d.health.boot_ticks) // 1000,
         "heap_free": gc.mem_free(), "heap_used": d.health.heap_used, "delivered": n, "lost_segments": lost,
         "loop_lag_ms": d.lag.status()["p99_ms"], "mqtt_errors": sink.errors, "ip": ip,
         "model": "{} {}".format(m.origin, m.info["sha256"][:8]) if m is not None else None}
    if rssi is not None:
        h["rssi"] = rssi
    return [(sink.base + "/health", json.dumps(h), True, 0)]


async def probe(sink, c):
    """Commands without a token come only through a broker that authenticates its clients: once connected, the
    device checks that the broker refuses a CONNECT without credentials (CONNACK 4, bad user name or password,
    or 5, not authorised). True if it does; False if it let the probe in, or the probe failed otherwise."""
    from sensorbox.device.mqtt import MQTTClient

    p = MQTTClient(c.client_id + "-probe", c.host, c.port, ssl=c.ssl, timeout_ms=c.timeout_ms)
    try:
        await p.connect()
    except Exception as e:  # MQTTError (a refusal names its code), OSError, TimeoutError
        return str(e).endswith(("(code 4)", "(code 5)"))
    await p.disconnect()
    return False


def _same(a, b):
    if not isinstance(a, str) or len(a) != len(b):
        return False
    x = 0
    for i in range(len(a)):
        x |= ord(a[i]) ^ ord(b[i])
    return x == 0


class _Body:
    # what http/body.read_json reads of a request
    def __init__(self, b):
        self.body = b


def _json(payload):
    """A command's JSON, checked as a request body is (``http/body.py``): UTF-8 without surrogates (escaped pairs,
    what JSON encoders send for characters beyond U+FFFF, become their character), bounded nesting, finite
    numbers. Raises ValueError with the reason."""
    from sensorbox.device import lazy
    from sensorbox.device.http.server import BadRequest

    try:
        return lazy.load("sensorbox.device.http.body").read_json(_Body(payload))
    except BadRequest as e:
        raise ValueError(e.message.replace("request body", "command"))
    finally:
        lazy.unload("sensorbox.device.http.body")


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
        elif not sink.trusted:
            raise ValueError("not authorised: the broker lets clients in without credentials; set "
                             "mqtt.command_token, or give the broker accounts (mqtt.username)")
        body.pop("token", None)
        if name == "reload_model":
            d.model = d.model_error = None
            d.supervisor.config_changed(("ml.",))  # the pipeline restarts and loads the model
        elif name == "restart":
            _restart(d)
        elif name == "label":
            res["label"] = _label_add(d, body)
        elif name in ("label_set", "record_start", "record_stop"):
            _record(sink, name, body, res)
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


def _restart(d):
    import asyncio

    d.log.warning("app", "restart requested over MQTT")
    d.log.flush()

    async def later():
        await asyncio.sleep_ms(500)  # the result goes out first
        d.platform.reset()

    asyncio.create_task(later())


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
    tmp = d.platform.data_dir + "/recording.json"
    with open(tmp + ".tmp", "w") as f:
        f.write(json.dumps(rec))
    import os

    os.rename(tmp + ".tmp", tmp)


def restore(sink):
    """Load the current label and any open recording saved before a restart (anything else in recording.json is
    set aside as ``.bad``: ``device/files.py``)."""
    from sensorbox.device import lazy

    try:
        fs = lazy.load("sensorbox.device.files")
        v = fs.load_json(sink.d.platform.data_dir + "/recording.json", sink.d.log, fs.recording_ok)
    finally:
        fs = None
        lazy.unload("sensorbox.device.files")
    if v is not None:
        sink.rec = v


def _label_add(d, body):
    from sensorbox.device import lazy

    try:
        return lazy.load("sensorbox.device.store.meta").label_add(d.store, body)
    finally:
        lazy.unload("sensorbox.device.store.meta")
