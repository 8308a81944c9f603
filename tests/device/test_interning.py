"""Text from outside that never passes through the HTTP server is not interned either (the requests' own places:
tests/host/test_api_contract.py::test_text_a_client_sends_is_never_interned).

MicroPython interns a str's character as a name, for good, when code indexes the str (``s[i]``) or loops over it:
each distinct character cost RAM until the next reboot, and past the name pool's doubling a ~15 KB block
(docs/heap.md "Interned names"). Checked here: the network name made from ``device.name`` (``station.hostname``,
on a board at every start and config change) and an MQTT command's token, compared with ``mqtt.command_token``
(``mqtt_control``; any client of the broker may send one)."""

import gc

BOARD = True


def _text(cp, n):
    # n characters from code point cp on (3 bytes of UTF-8 each), made without chr(), which interns its result
    b = bytearray()
    for c in range(cp, cp + n):
        b += bytes((0xE0 | c >> 12, 0x80 | (c >> 6) & 63, 0x80 | c & 63))
    return b.decode()


def _kept(fn, first):
    # bytes the heap keeps after fn(text) for 300 values of 3 characters no code spells (CJK from ``first``)
    fn("\u4e00\u4e01\u4e02")  # whatever a first call makes once
    gc.collect()
    before = gc.mem_alloc()
    for i in range(300):
        fn(_text(first + 3 * i, 3))
    gc.collect()
    return gc.mem_alloc() - before


def test_a_device_names_characters_are_not_interned():
    from sensorbox.device.net.station import hostname

    assert hostname("Bench \u4e00 2", "x") == "bench-2"
    grown = _kept(lambda s: hostname(s + " lab", "240ac412ab12"), 0x4E10)
    assert grown < 1024, grown  # (looping over the str: ~16 KB, the name pool doubled)


def test_an_mqtt_commands_token_is_not_interned():
    from devtest import inner
    from sensorbox.device.integrations import mqtt_control

    same = inner(mqtt_control, "_same")
    assert same("s3cret\u00e9", "s3cret\u00e9") and not same("s3cret\u00e8", "s3cret\u00e9")
    assert not same(None, "x") and not same("x", "xy")
    tok = "\u4e00\u4e01\u4e03"  # (the same length as the guesses, so that they are compared)
    grown = _kept(lambda s: same(s, tok), 0x5E10)
    assert grown < 1024, grown  # (indexing the str: ~14 KB, the name pool doubled)
