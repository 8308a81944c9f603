"""The result bus: fan-out in order, a failing subscriber is logged and does not stop the others."""

from devtest import quiet_log
from sensorbox.device.log import Bus


def test_fan_out_in_order_and_isolated_failures():
    log = quiet_log()
    bus = Bus(log)
    got = []

    def first(topic, t, v):
        got.append(("first", topic, t, v))

    def broken(topic, t, v):
        raise ValueError("subscriber bug")

    def last(topic, t, v):
        got.append(("last", topic, t, v))

    bus.subscribe("events", first)
    bus.subscribe("events", broken)
    bus.subscribe("events", last)
    bus.publish("events", 123, {"type": "x"})
    bus.publish("other", 1, None)
    assert got == [("first", "events", 123, {"type": "x"}), ("last", "events", 123, {"type": "x"})]
    assert any("subscriber bug" in e["msg"] for e in log.entries())
    bus.unsubscribe("events", first)
    bus.publish("events", 5, 1)
    assert got[-1] == ("last", "events", 5, 1) and len(got) == 3
