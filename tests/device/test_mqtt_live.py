"""The MQTT sink's Home Assistant state topics on MicroPython: which live rows may go out (``MqttSink._fits``);
a device with MQTT off holds none of the sink, its client or the Home Assistant device."""

HEAPSIZE = "160wK"  # (the app's parts, as at boot: bundle.APP_HEAP)


class _Dev:
    # what MqttSink reads of the device
    def __init__(self, model):
        from devtest import StubConfig, quiet_log, tmpdir

        self.config = StubConfig()
        self.log = quiet_log()
        from sensorbox.device.analysis.pipeline import ModelSlot

        self.ml = ModelSlot()
        self.ml.model = model
        self.device_id = "0123456789ab"

        class P:
            data_dir = tmpdir("data")

        self.platform = P()


def test_live_rows_name_only_the_classes_discovery_announced():
    # Home Assistant's activity sensor and event entity refuse (with a warning) a class their discovery did not
    # list: after a model change, the previous model's rows reach the data topics only
    import array

    from devtest import inner
    from sensorbox.device.integrations.mqtt_sink import MqttSink

    class M:
        classes = ["walk", "run"]
        gids = array.array("h", [3, 5])  # their ids in the store's class table

    s = MqttSink(_Dev(M()))
    m = s.d.ml.model
    s.classes = m.classes  # the last discovery listed this model's classes
    fits = inner(s, "_fits")
    assert fits(0, (3, 900)) and fits(0, (5, 900)) and fits(0, (-1, 400))  # -1: unknown
    assert not fits(0, (4, 900))  # a class of an earlier model
    assert fits(1, (6000, 5000, 7000, 6500, 6000, 5500))
    assert fits(2, b'{"type": "outbox_loss", "sink": "mqtt"}')
    assert fits(2, b'{"type": "class_change", "from": "sit", "to": "run", "confidence": 900}')
    assert fits(2, b'{"type": "class_change", "from": "run", "to": "unknown", "confidence": 300}')
    assert not fits(2, b'{"type": "class_change", "from": "run", "to": "sit", "confidence": 900}')
    s.classes = ["walk", "run"]  # a model is active whose classes were not announced yet (another list)
    assert not fits(0, (3, 900)) and not fits(0, (-1, 400))
    assert not fits(2, b'{"type": "class_change", "from": "sit", "to": "run", "confidence": 900}')
    assert fits(1, (6000, 5000, 7000, 6500, 6000, 5500)) and fits(2, b'{"type": "outbox_loss"}')


async def test_a_device_with_mqtt_off_holds_none_of_it():
    # MQTT and the Home Assistant device cost no resident heap while mqtt.enabled is off (the default): the app
    # runs without the service, and neither the sink, its cold part nor the client is imported; turned on, they are
    import os
    import sys

    import asyncio
    from sensorbox.device import app
    from sensorbox.device.platform import unix

    os.putenv("SENSORBOX_PORT", "0")  # (the HTTP server on a free port)
    os.putenv("SENSORBOX_DATA", os.getenv("SENSORBOX_TEST_TMP"))  # (the data and the watchdog's file)
    plat = unix.Platform()
    d = app.Device(plat, echo_log=False)
    run = asyncio.create_task(d.run())  # every service, as at boot
    await asyncio.sleep_ms(1500)
    mods = ("sensorbox.device.integrations.mqtt_sink", "sensorbox.device.integrations.mqtt_control",
            "sensorbox.device.integrations.mqtt")
    assert d.supervisor.get("pipeline") is not None and d.supervisor.get("mqtt") is None and d.mqtt is None
    assert [m for m in mods if m in sys.modules] == []
    d.config.update({"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": 1})  # (nobody listens)
    await asyncio.sleep_ms(500)
    assert d.supervisor.get("mqtt") is not None and mods[0] in sys.modules and mods[2] in sys.modules
    d.stop()
    await run
    await d.shutdown()
