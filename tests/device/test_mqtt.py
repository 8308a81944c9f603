"""The MQTT client's packet encoding on MicroPython (byte lengths, UTF-8) and its resident heap. Its behaviour
against a real broker is tested from tests/host/test_mqtt_client.py (mosquitto is started by the host test)."""

import gc


def test_remaining_length_encoding():
    from sensorbox.device.integrations.mqtt import _len_bytes

    assert bytes(_len_bytes(0)) == b"\x00"
    assert bytes(_len_bytes(127)) == b"\x7f"
    assert bytes(_len_bytes(128)) == b"\x80\x01"
    assert bytes(_len_bytes(16383)) == b"\xff\x7f"
    assert bytes(_len_bytes(16384)) == b"\x80\x80\x01"
    assert bytes(_len_bytes(268435455)) == b"\xff\xff\xff\x7f"
    try:
        _len_bytes(268435456)
    except OSError:
        pass
    else:
        raise AssertionError("too large accepted")


def test_strings_are_length_prefixed_in_utf8_bytes():
    from sensorbox.device.integrations.mqtt import _str

    s = "25 \u00b0C \u00b5"  # 7 characters, 9 bytes
    assert len(s) == 7
    out = _str(s)
    assert out[:2] == b"\x00\x09"
    assert out[2:] == s.encode()
    assert _str(b"ab") == b"\x00\x02ab"


def test_heap_of_client_outbox_and_sink_code():
    gc.collect()
    import asyncio  # noqa: F401

    from sensorbox.device import supervisor  # noqa: F401 - resident in the app anyway (mqtt's wait_for_ms)

    gc.collect()
    f1 = gc.mem_free()
    from sensorbox.device.integrations import mqtt

    gc.collect()
    f2 = gc.mem_free()
    c = mqtt.MQTTClient("id", "127.0.0.1", 1883, will=("a/status", b"offline", True, 1))
    gc.collect()
    f3 = gc.mem_free()
    from sensorbox.device.store import core  # noqa: F401 - resident in the app anyway

    gc.collect()
    f4 = gc.mem_free()
    from sensorbox.device.integrations import outbox  # noqa: F401

    gc.collect()
    f5 = gc.mem_free()
    from sensorbox.device.integrations import mqtt_sink  # noqa: F401

    gc.collect()
    f6 = gc.mem_free()
    print("HEAP mqtt code {} B, client object {} B, outbox code {} B, sink code {} B".format(
        f1 - f2, f2 - f3, f4 - f5, f5 - f6))
    assert c.connected is False
    # outbox code: ~3.9 KB, ~3.4 KB for the segment reader that checks every block's CRC (store/reader.py) and
    # ~1.3 KB for the decoder of coded blocks (shared/codec.py); the outbox and the sink are summed because the
    # name pool's growth (a few KB at once) falls into one or the other (7.5 + 10.3 KB, then 12.5 + 6.7 KB)
    assert f1 - f2 < 12000 and f2 - f3 < 1500 and f4 - f6 < 20000
