"""Integrations that feed other systems from the store (store-and-forward): ``mqtt_sink`` (the MQTT service;
``mqtt_cold``: discovery, commands, health, status, loaded only while used) and ``webhook`` (signed JSON POSTs
over ``httpc``; ``webhook_cold``: settings and status). Imported only when enabled.

What every sink shares is here: ``message``, the JSON body sent for one stored row (the outbox,
``store/outbox.py``, reads the rows back from the store). Here rather than in a module of its own: the package is
loaded with any sink anyway, and a module of its own costs a sink's heap its module object and table.
"""

SOUNDLEVEL = ("leq", "lmin", "lmax", "l10", "l50", "l90")


def db_text(v):
    """Centi-dB int as a decimal string (no float formatting: float32 on the device)."""
    a = -v if v < 0 else v
    return "{}{}.{:02d}".format("-" if v < 0 else "", a // 100, a % 100)


def class_name(device, k):
    """The name of stored class id ``k``: from the running model when it has that class, else from the store's
    class table (a class of an earlier model); "unknown" for -1 (or an id the table lost)."""
    m = device.model
    g = m.gids if m is not None else None
    if g is not None:
        for i in range(len(g)):
            if g[i] == k:
                return m.classes[i]
    return device.store.class_name(k) or "unknown"


def message(device, resource, head, v):
    """The JSON body (bytes) every sink sends for one stored row: ``head`` is the sink's opening fields without
    the closing brace (e.g. ``'{"t":1700000000000,"key":"..."'``), then the row's own fields. A prediction's
    ``class`` is its id in the store's class table and ``label`` the name of the model that made it."""
    if resource == "events":
        body = bytes(v)
        return head.encode() + (b"," + body[1:] if len(body) > 2 else b"}")
    if resource == "predictions" or resource == "soundclass":  # (a sound class: named by the class table)
        import json

        return '{},"class":{},"label":{},"confidence":{}.{:03d}}}'.format(
            head, v[0], json.dumps(class_name(device, v[0])), v[1] // 1000, v[1] % 1000).encode()
    parts = [head]
    for i in range(len(SOUNDLEVEL)):
        parts.append(',"{}":{}'.format(SOUNDLEVEL[i], db_text(v[i])))
    parts.append("}")
    return "".join(parts).encode()
