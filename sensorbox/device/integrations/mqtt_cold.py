"""The MQTT sink's rarely used parts, loaded only while they run (``lazy``) so their code and strings cost no
resident heap: Home Assistant discovery, and commands.

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
    comps = (
        _sensor(pre, "activity", "Activity", base + "/predictions", "{{ value_json.label }}", extra={"ic": "mdi:run"}),
        _sensor(pre, "confidence", "Activity confidence", base + "/predictions",
                "{{ (value_json.confidence * 100) | round(0) }}", "%"),
        _sensor(pre, "leq", "Sound level Leq", base + "/soundlevel", "{{ value_json.leq }}", "dB", "sound_pressure"),
        _sensor(pre, "lmax", "Sound level Lmax", base + "/soundlevel", "{{ value_json.lmax }}", "dB",
                "sound_pressure"),
        _sensor(pre, "uptime", "Uptime", base + "/health", "{{ value_json.uptime_s }}", None, "duration",
                {"unit_of_meas": "s", "ent_cat": "diagnostic"}),
    )
    for k, c in comps:
        out.append('{}"{}":{}'.format("," if len(out) > 1 else "", k, json.dumps(c)).encode())
    if d.config.get("mqtt.commands"):
        c = {"p": "button", "name": "Reload model", "uniq_id": pre + "reload_model",
             "cmd_t": base + "/cmd/reload_model", "pl_prs": "{}", "ent_cat": "config"}
        out.append(',"reload_model":{}'.format(json.dumps(c)).encode())
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
            from sensorbox.device import lazy

            try:
                res["label"] = lazy.load("sensorbox.device.store.meta").label_add(d.store, body)
            finally:
                lazy.unload("sensorbox.device.store.meta")
        else:
            raise ValueError("unknown command")
        res["ok"] = True
        sink.commands += 1
    except ValueError as e:  # QueryError is a ValueError
        sink.refused += 1
        res["error"] = str(e)
        d.log.warning("mqtt", "command {} refused: {}".format(name, e))
    return json.dumps(res)

