"""The MQTT sink's rarely used parts, loaded only while they run (``lazy``) so their code and strings cost no
resident heap: Home Assistant discovery, and commands: ``reload_model``, ``label``, ``label_set``,
``record_start``, ``record_stop`` (see ``mqtt_sink``). A recording is a labelled time range being open:
``record_start`` opens it at now with the current label (``label_set``) or the one given, ``record_stop`` closes
it into a stored label (``store/meta.label_add``, as ``POST /api/labels``). The current label and an open
recording are kept in ``recording.json`` in the data directory, so a restart does not lose them. (One module,
not two: each lazily loaded module leaves its interned names behind; see README "Interned names".)

Discovery is device-based: topic ``homeassistant/device/<id>/config``, retained; payload ``dev`` (identifiers,
name, maker, model, software), ``o`` (origin, ``name`` required), ``avty_t`` (the retained online/offline topic
that carries the last will), ``qos`` and ``cmps``: each component has ``p`` (platform) and ``uniq_id``; sensors
read JSON from the state topics. It is returned as a list of small byte pieces that the client sends as one
message without joining them (no large contiguous block of RAM).
"""

import json

import sensorbox


def _sensor(pre, key, name, topic, tpl, unit=None, dcla=None, extra=None):
    c = {"p": "sensor", "name": name, "uniq_id": pre + key, "stat_t": topic, "val_tpl": tpl}
    if unit:
        c["unit_of_meas"] = unit
        c["stat_cla"] = "measurement"
    if dcla:
        c["dev_cla"] = dcla
    if extra:
        c.update(extra)
    return key, c


def discovery(sink):
    """(topic, list of byte pieces) of the discovery config."""
    d = sink.d
    base = sink.base
    i = d.device_id
    v = sensorbox.__version__
    pre = "sb_" + i + "_"
    head = {"dev": {"ids": ["sensorbox_" + i], "name": d.config.get("device.name"), "mf": "sensorbox",
                    "mdl": "sensorbox", "sw": v}, "o": {"name": "sensorbox", "sw": v},
            "avty_t": base + "/status", "qos": 1}
    out = [json.dumps(head)[:-1].encode() + b',"cmps":{']
    comps = [
        _sensor(pre, "activity", "Activity", base + "/predictions", "{{ value_json.label }}", extra={"ic": "mdi:run"}),
        _sensor(pre, "confidence", "Activity confidence", base + "/predictions",
                "{{ (value_json.confidence * 100) | round(0) }}", "%"),
        _sensor(pre, "leq", "Sound level Leq", base + "/soundlevel", "{{ value_json.leq }}", "dB", "sound_pressure"),
        _sensor(pre, "lmax", "Sound level Lmax", base + "/soundlevel", "{{ value_json.lmax }}", "dB",
                "sound_pressure"),
        _sensor(pre, "uptime", "Uptime", base + "/health", "{{ value_json.uptime_s }}", None, "duration",
                {"unit_of_meas": "s", "ent_cat": "diagnostic"}),
    ]
    if d.config.get("mqtt.commands"):
        for k, name in (("reload_model", "Reload model"), ("record_start", "Start recording"),
                        ("record_stop", "Stop recording")):
            c = {"p": "button", "name": name, "uniq_id": pre + k, "cmd_t": base + "/cmd/" + k, "pl_prs": "{}"}
            if k == "reload_model":
                c["ent_cat"] = "config"
            comps.append((k, c))
    for k, c in comps:
        out.append('{}"{}":{}'.format("," if len(out) > 1 else "", k, json.dumps(c)).encode())
    out.append(b"}}")
    return "homeassistant/device/{}/config".format(i), out


def _same(a, b):
    if not isinstance(a, str) or len(a) != len(b):
        return False
    x = 0
    for i in range(len(a)):
        x |= ord(a[i]) ^ ord(b[i])
    return x == 0


def command(sink, name, payload):
    """Run command ``name`` (payload: JSON bytes); returns the result message (bytes)."""
    d = sink.d
    res = {"cmd": name, "ok": False}
    try:
        body = json.loads(payload) if payload else {}
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        tok = d.config.get("mqtt.command_token")
        if tok and not _same(body.get("token"), tok):
            raise ValueError("not authorised")
        body.pop("token", None)
        if name == "reload_model":
            d.model = d.model_error = None
            d.supervisor.config_changed(("ml.",))  # the pipeline restarts and loads the model
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
        d.log.warning("mqtt", "command {} refused: {}".format(name, e))
    return json.dumps(res)


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
