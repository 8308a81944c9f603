"""JSON request bodies (http/body.py): what a client sends must leave nothing behind in the heap once answered.

Issue 19: after a Schemathesis run the device's live heap stayed ~18 KB larger, for good: every distinct
astral character sent as an escaped surrogate pair (``"\\ud83d\\ude00"``, as Python's json writes emoji) was
turned into text with ``chr()``, which on MicroPython interns the one-character string as a name (qstr) that is
never freed. A client sending many such characters grew the name pool without bound."""

import gc


class Req:
    def __init__(self, body, content_type="application/json"):
        self.body = body
        self.content_type = content_type


def _escaped(cp):
    cp -= 0x10000
    return "\\u{:04x}\\u{:04x}".format(0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)).encode()


def test_astral_characters_intern_no_names():
    from sensorbox.device.http import body

    def send(first, n):
        for cp in range(first, first + n):
            v = body.read_json(Req(b'{"' + _escaped(cp) + b'": "x' + _escaped(cp + 7) + b'"}'))
            k = list(v)[0]
            assert k.encode() == bytes((0xF0 | cp >> 18, 0x80 | (cp >> 12) & 63, 0x80 | (cp >> 6) & 63,
                                        0x80 | cp & 63))

    send(0x1F300, 8)  # whatever the first calls make once
    gc.collect()
    before = gc.mem_alloc()
    send(0x20000, 400)  # 400 characters no code spells: each was a new name for good
    gc.collect()
    grown = gc.mem_alloc() - before
    assert grown < 1024, grown  # (before the fix: ~8 KB: names and their pool)


def test_escaped_pairs_become_utf8_and_lone_surrogates_are_refused():
    from sensorbox.device.http import body

    v = body.read_json(Req(b'{"k": "a\\ud83d\\ude00b", "\\ud83d\\ude01": 1}'))
    assert v["k"].encode() == b"a\xf0\x9f\x98\x80b"
    assert b"\xf0\x9f\x98\x81" in [k.encode() for k in v]
    for bad in (b'{"k": "\\ud83d"}', b'{"k": "\\ude00"}', b'{"k": "\\ud83d\\u0041"}'):
        try:
            body.read_json(Req(bad))
        except Exception as e:  # (BadRequest: answered 400)
            assert "surrogate" in e.message and e.status == 400
        else:
            raise AssertionError(bad)
    assert body.read_json(Req(b'{"k": "\\\\ud83d"}'))["k"] == "\\ud83d"  # an escaped backslash: plain text


def _allocated(fn):
    # bytes ``fn()`` allocates (the collector off: everything it makes is counted, whatever it drops)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        out = fn()
        return gc.mem_alloc() - before, out
    finally:
        gc.enable()


def test_a_whole_configuration_needs_no_copy_of_the_body():
    """Issue 19: Schemathesis' whole-config PUT (every key, a 4000-character CA: ~6 KB) got 503 "short of
    memory" at APP_HEAP after a while: the body (a bytearray, as the server reads it) was decoded into a str
    before it was parsed, a copy needing a second block of its size that a fragmented heap lacked. (A str's
    ``encode()`` and a bytes' ``decode()`` share the data on MicroPython: no copy.)"""
    import json

    from sensorbox.device.http import body
    from sensorbox.shared import config_schema as schema

    every = {}
    for e in schema.entries():
        every[e[0]] = e[2]
    every["mqtt.tls_ca"] = "M" * 4000
    data = json.dumps(every).encode()
    every = None
    got = bytearray(data)  # (as the server reads a body)
    body.read_json(Req(b'{"mqtt.tls_ca": "M"}'))  # (whatever a first call makes once)
    parse, _ = _allocated(lambda: json.loads(data))  # the parser's own (garbage included: the collector is off)
    used, _ = _allocated(lambda: body.read_json(Req(got)))
    print("body", len(data), "bytes; the parser allocates", parse, "bytes, read_json", used)
    assert used < parse + len(data) // 2, (len(data), parse, used)  # (with the copy: + len(data))
