# Integration benchmarks on the MicroPython unix port (run by bench/bench_integrations.py against a real mosquitto
# and a CPython HTTP receiver it starts). Prints "name value baseline unit".
#
#   mp_integrations.py mqtt PORT          QoS 1 messages/s from the device client (baseline: QoS 0, same client)
#   mp_integrations.py webhook PORT       webhook POSTs/s through httpc (the host prints the CPython baseline)
#   mp_integrations.py drain PORT DIR MS  one hour of predictions + sound levels + events in the store, then the
#                                         MQTT sink drains it (mqtt.replay_ms = MS) while a sampler keeps writing
#                                         live rows
#   mp_integrations.py heap PORT WPORT N  gc.mem_free deltas of the MQTT client + outbox + sink and of the webhook
#                                         sink with N receivers (fresh interpreter)
import gc
import sys
import time

import asyncio

from sensorbox.shared import config_schema

EPOCH0 = 1700000000000
HOUR_MS = 3600000
PAYLOAD = b'{"t":1700000000000,"key":"dev1-soundlevel-1700000000000","leq":61.02,"lmin":58.10,"lmax":66.93,' \
          b'"l10":63.20,"l50":60.90,"l90":59.00}'  # a sound level message as the sink sends it (~130 B)


def out(key, value, base, unit):
    print(key, value, base, unit)


def epoch_ms():
    return EPOCH0 + time.ticks_ms()


class Cfg:
    def __init__(self, **kw):
        self.values = config_schema.defaults()
        for k in kw:
            self.values[k.replace("__", ".")] = kw[k]
        for r in ("features", "predictions", "soundlevel", "events"):
            self.values["store." + r + "_kb"] = 256
        self.values["store.min_free_kb"] = 0

    def get(self, k):
        return self.values[k]


class Quiet:
    def warning(self, *a):
        pass

    info = error = warning


class Bus:
    def __init__(self, store):
        self.store = store

    def publish(self, topic, t, value):
        self.store.on_bus(topic, t, value)


class Model:
    classes = ("walking", "running", "cycling", "sitting", "standing", "stairs", "PEN")
    gids = __import__("array").array("h", range(7))  # the store's ids of its classes (given when a model loads)
    origin = "bench"
    info = {"sha256": "0123456789abcdef"}



class Slot:  # the device's model state (analysis/pipeline.ModelSlot) as the sinks read it (the pipeline: not loaded)
    model = Model()
    error = None
    busy = False


class Health:
    boot_ticks = 0
    heap_used = 0


class Lag:
    n = 0
    samples = ()


class Platform:
    name = "unix"

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.epoch_ms = epoch_ms

    def http_port(self, port):
        return port

    def wifi(self):
        return "127.0.0.1", None, None


class Dev:
    """What the sinks use of the device app."""

    def __init__(self, root, cfg):
        from sensorbox.device.store import core

        self.config = cfg
        self.device_id = "bench1"
        self.log = Quiet()
        self.store = core.Store(root + "/store", self.log, epoch_ms, None)
        self.store.configure(cfg)
        self.store.open()
        self.bus = Bus(self.store)
        self.ml = Slot()
        self.health = Health()
        self.lag = Lag()
        self.platform = Platform(root)


async def mqtt_rates(port):
    from sensorbox.device.integrations.mqtt import MQTTClient

    c = MQTTClient("bench-rate", "127.0.0.1", port, keepalive=30)
    await c.connect()
    for _ in range(50):  # warm up
        await c.publish("bench/x", PAYLOAD, qos=1)
    n1 = 1500
    t0 = time.ticks_ms()
    for _ in range(n1):
        await c.publish("bench/x", PAYLOAD, qos=1)
    q1 = n1 * 1000 / time.ticks_diff(time.ticks_ms(), t0)
    n0 = 3000
    t0 = time.ticks_ms()
    for _ in range(n0):
        await c.publish("bench/x", PAYLOAD, qos=0)
    await c.publish("bench/x", PAYLOAD, qos=1)  # acknowledged after every QoS 0 message before it was taken
    q0 = (n0 + 1) * 1000 / time.ticks_diff(time.ticks_ms(), t0)
    await c.disconnect()
    out("mqtt_qos1_msgs_per_s", round(q1, 1), round(q0, 1), "msg/s")


async def webhook_rate(port):
    from sensorbox.device.integrations import httpc

    url = (False, "127.0.0.1", port, "/hook")
    mac = httpc.Hmac(b"k" * 32)
    for _ in range(10):
        await httpc.post(url, PAYLOAD, b"", 5000)
    n = 300
    t0 = time.ticks_ms()
    for i in range(n):
        ts = str(1700000000 + i)
        h = "X-Sensorbox-Timestamp: {}\r\nX-Sensorbox-Signature: sha256={}\r\n".format(
            ts, mac.hexdigest(ts.encode(), b".", PAYLOAD))
        code = await httpc.post(url, PAYLOAD, h.encode(), 5000)
        if code != 200:
            raise RuntimeError("receiver answered {}".format(code))
    out("webhook_posts_per_s", round(n * 1000 / time.ticks_diff(time.ticks_ms(), t0), 1), 0, "POST/s")


def fill_hour(d, t_end):
    """An hour of what the device stores, oldest first, flushed every 10 s as the store would: a sound level per
    second, a prediction per 1.28 s (hop 64 at 50 Hz), a class change per minute."""
    st = d.store
    t = t_end - HOUR_MS
    n = [0, 0, 0]
    k = 0
    next_pred = t
    while t < t_end:
        st.on_bus("soundlevel", t, (6102 + k % 50, 5810, 6693, 6320, 6090, 5900))
        n[0] += 1
        while next_pred <= t:
            st.on_bus("predictions", next_pred, (k % 7, 700 + k % 300))
            next_pred += 1280
            n[1] += 1
        if k % 60 == 30:
            st.on_bus("events", t + 1, {"type": "class_change", "from": "walking", "to": "running",
                                        "confidence": 812})
            n[2] += 1
        if k % 10 == 9:
            st.flush()
        k += 1
        t += 1000
    st.flush()
    return n


async def drain(port, root, replay_ms):
    from sensorbox.device.integrations.mqtt_sink import MqttSink

    cfg = Cfg(mqtt__enabled=True, mqtt__host="127.0.0.1", mqtt__port=port, mqtt__prefix="bench",
              mqtt__replay_ms=replay_ms)
    sfx = "" if replay_ms == 20 else "_replay{}".format(replay_ms)
    d = Dev(root, cfg)
    t_end = epoch_ms() - 1000
    t0 = time.ticks_ms()
    n = fill_hour(d, t_end)
    fill_s = time.ticks_diff(time.ticks_ms(), t0) / 1000
    for r in ("predictions", "soundlevel", "events"):
        d.store.cursor("mqtt." + r, r, t_end - HOUR_MS - 1)  # the sink's cursors, an hour behind
    stats = {"late_max": 0, "late_sum": 0, "polls": 0, "missed": 0, "flush_max_us": 0}
    running = [True]

    async def sampler():
        # Stands in for the sensors: wakes every 20 ms (the mic's poll), writes a live sound level every second
        # and a prediction every 1.28 s, and flushes the store every second, as the device does meanwhile.
        k = 0
        due = time.ticks_add(time.ticks_ms(), 20)
        while running[0]:
            await asyncio.sleep_ms(max(0, time.ticks_diff(due, time.ticks_ms())))
            late = time.ticks_diff(time.ticks_ms(), due)
            stats["polls"] += 1
            stats["late_sum"] += late
            if late > stats["late_max"]:
                stats["late_max"] = late
            if late >= 20:
                stats["missed"] += 1  # a whole poll period late
            k += 1
            if k % 50 == 0:
                d.store.on_bus("soundlevel", epoch_ms(), (6000, 5800, 6600, 6300, 6000, 5900))
                u = time.ticks_us()
                d.store.flush()
                u = time.ticks_diff(time.ticks_us(), u)
                if u > stats["flush_max_us"]:
                    stats["flush_max_us"] = u
            if k % 64 == 0:
                d.store.on_bus("predictions", epoch_ms(), (1, 900))
            due = time.ticks_add(due, 20)

    smp = asyncio.create_task(sampler())
    await asyncio.sleep_ms(3000)  # the baseline: the sampler alone
    idle = dict(stats)
    for k in stats:
        stats[k] = 0
    sink = MqttSink(d)
    t0 = time.ticks_ms()
    task = asyncio.create_task(sink.run())
    while sink.outboxes is None or any(ob.pending() for ob in sink.outboxes) or any(sink.queues):
        await asyncio.sleep_ms(100)
        if time.ticks_diff(time.ticks_ms(), t0) > 1800000:
            raise RuntimeError("drain did not finish in 30 min")
    drain_s = time.ticks_diff(time.ticks_ms(), t0) / 1000
    running[0] = False
    await smp
    task.cancel()
    sent = sum(ob.sent for ob in sink.outboxes)
    out("backlog_hour_messages" + sfx, sent, sum(n), "messages")
    out("drain_hour_backlog_s" + sfx, round(drain_s, 1), 3600, "s_vs_1h")
    out("drain_msgs_per_s" + sfx, round(sent / drain_s, 1), round(1000 / (replay_ms or 1), 1),
        "msg/s_vs_replay_ms_cap")
    out("drain_sampler_late_max_ms" + sfx, stats["late_max"], max(1, idle["late_max"]), "ms_vs_idle")
    out("drain_sampler_late_mean_ms" + sfx, round(stats["late_sum"] / max(1, stats["polls"]), 2),
        round(max(0.01, idle["late_sum"] / max(1, idle["polls"])), 2), "ms_vs_idle")
    out("drain_sampler_missed_polls" + sfx, stats["missed"], stats["polls"], "polls_late_by_20ms_of_all")
    out("drain_store_flush_max_us" + sfx, stats["flush_max_us"], max(1, idle["flush_max_us"]), "us_vs_idle")
    out("fill_hour_s" + sfx, round(fill_s, 2), 3600, "s")


async def heap(port, wport, hooks):
    gc.collect()
    from sensorbox.device.store import core  # noqa: F401 - resident in the app anyway
    import json  # noqa: F401
    import random  # noqa: F401

    root = "/tmp/sb-bench-heap-{}-{}".format(hooks, time.ticks_ms())
    import os

    os.mkdir(root)
    kw = {"mqtt__enabled": True, "mqtt__host": "127.0.0.1", "mqtt__port": port, "webhook__enabled": True,
          "webhook__url": "http://127.0.0.1:{}/1".format(wport), "webhook__secret": "s" * 32}
    for i in range(2, hooks + 1):
        kw["webhook__{}__url".format(i)] = "http://127.0.0.1:{}/{}".format(wport, i)
    d = Dev(root, Cfg(**kw))
    gc.collect()
    f0 = gc.mem_free()
    from sensorbox.device.integrations import mqtt  # noqa: F401
    from sensorbox.device.integrations import outbox  # noqa: F401
    from sensorbox.device.integrations import mqtt_sink

    gc.collect()
    f1 = gc.mem_free()
    sink = mqtt_sink.MqttSink(d)
    task = asyncio.create_task(sink.run())
    for _ in range(100):
        await asyncio.sleep_ms(50)
        if sink.client is not None and sink.client.connected and sink.announced:
            break
    await asyncio.sleep_ms(1500)
    gc.collect()
    f2 = gc.mem_free()
    out("heap_mqtt_code_bytes", f0 - f1, 131072, "bytes_of_64wK")
    out("heap_mqtt_running_objects_bytes", f1 - f2, 131072, "bytes_of_64wK")
    out("heap_mqtt_total_bytes", f0 - f2, 131072, "bytes_of_64wK")
    from sensorbox.device.integrations import webhook

    gc.collect()
    f3 = gc.mem_free()
    wh = webhook.WebhookSink(d)
    wtask = asyncio.create_task(wh.run())
    await asyncio.sleep_ms(1500)
    gc.collect()
    f4 = gc.mem_free()
    out("heap_webhook_code_bytes", f2 - f3, 131072, "bytes_of_64wK")
    out("heap_webhook_running_{}_hooks_bytes".format(hooks), f3 - f4, 131072, "bytes_of_64wK")
    task.cancel()
    wtask.cancel()
    if wh.hooks[0].state != "running":
        raise RuntimeError("webhook sink: " + wh.hooks[0].state)


def main():
    mode = sys.argv[1]
    port = int(sys.argv[2])
    if mode == "mqtt":
        asyncio.run(mqtt_rates(port))
    elif mode == "webhook":
        asyncio.run(webhook_rate(port))
    elif mode == "drain":
        asyncio.run(drain(port, sys.argv[3], int(sys.argv[4])))
    elif mode == "heap":
        asyncio.run(heap(port, int(sys.argv[3]), int(sys.argv[4])))


main()
