"""The MQTT sink's Home Assistant state topics on MicroPython: which live rows may go out (``MqttSink._fits``)."""


class _Dev:
    # what MqttSink reads of the device
    def __init__(self, model):
        from devtest import StubConfig, quiet_log, tmpdir

        self.config = StubConfig()
        self.log = quiet_log()
        self.model = model
        self.device_id = "0123456789ab"

        class P:
            data_dir = tmpdir("data")

        self.platform = P()


def test_live_rows_name_only_the_classes_discovery_announced():
    # Home Assistant's activity sensor and event entity refuse (with a warning) a class their discovery did not
    # list: after a model change, the previous model's rows reach the data topics only
    import array

    from sensorbox.device.integrations.mqtt_sink import MqttSink

    class M:
        classes = ["walk", "run"]
        gids = array.array("h", [3, 5])  # their ids in the store's class table

    s = MqttSink(_Dev(M()))
    m = s.d.model
    s.classes = m.classes  # the last discovery listed this model's classes
    assert s._fits(0, (3, 900)) and s._fits(0, (5, 900)) and s._fits(0, (-1, 400))  # -1: unknown
    assert not s._fits(0, (4, 900))  # a class of an earlier model
    assert s._fits(1, (6000, 5000, 7000, 6500, 6000, 5500))
    assert s._fits(2, b'{"type": "outbox_loss", "sink": "mqtt"}')
    assert s._fits(2, b'{"type": "class_change", "from": "sit", "to": "run", "confidence": 900}')
    assert s._fits(2, b'{"type": "class_change", "from": "run", "to": "unknown", "confidence": 300}')
    assert not s._fits(2, b'{"type": "class_change", "from": "run", "to": "sit", "confidence": 900}')
    s.classes = ["walk", "run"]  # a model is active whose classes were not announced yet (another list)
    assert not s._fits(0, (3, 900)) and not s._fits(0, (-1, 400))
    assert not s._fits(2, b'{"type": "class_change", "from": "sit", "to": "run", "confidence": 900}')
    assert s._fits(1, (6000, 5000, 7000, 6500, 6000, 5500)) and s._fits(2, b'{"type": "outbox_loss"}')
