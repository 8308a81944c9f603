"""Integration benchmarks on the MicroPython unix port, against a real mosquitto (/usr/sbin/mosquitto, started here)
and a CPython HTTP receiver in this process, each figure against a baseline measured in the same run:

- MQTT QoS 1 messages/s from the device client (one acknowledged message in flight) vs QoS 0 from the same client;
- webhook POSTs/s through the device's HTTP client (one connection per POST, HMAC-signed) vs CPython's
  http.client doing the same against the same receiver;
- draining a one-hour backlog (predictions every 1.28 s, sound levels every second, a class change a minute, as
  the device stores them) through the MQTT sink at the default ``mqtt.replay_ms`` and at 0, while a stand-in
  sampler keeps waking every 20 ms, writing live rows and flushing the store: drain time vs the hour, the
  sampler's lateness vs the same sampler alone, polls late by a whole period;
- heap (gc.mem_free deltas, fresh interpreter): the MQTT client + outbox + sink code, its running objects
  (connected, three outbox cursors); the webhook sink's code and running objects with 1 and 3 receivers.
"""

import http.client
import os
import sys
import tempfile
import time

from bench.mp import run_script

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "host"))

LABELS = {
    "mqtt_qos1_msgs_per_s": "MQTT QoS 1 msg/s (device client, 130 B) vs QoS 0 from the same client",
    "webhook_posts_per_s": "webhook POST/s (device httpc, signed) vs CPython http.client",
    "backlog_hour_messages": "one-hour backlog: messages delivered (incl. live rows meanwhile) vs the hour's rows",
    "drain_hour_backlog_s": "one-hour backlog drained to mosquitto (mqtt.replay_ms 20, default) vs 1 h",
    "drain_msgs_per_s": "drain rate vs the 1000/replay_ms cap",
    "drain_sampler_late_max_ms": "sampler (20 ms polls) lateness max during drain vs sampler alone",
    "drain_sampler_late_mean_ms": "sampler lateness mean during drain vs sampler alone",
    "drain_sampler_missed_polls": "sampler polls >= 20 ms late during drain, of all polls",
    "drain_store_flush_max_us": "store flush (1 s of live rows) max during drain vs alone",
    "drain_hour_backlog_s_replay0": "the same backlog at mqtt.replay_ms 0 (as fast as PUBACKs come) vs 1 h",
    "drain_msgs_per_s_replay0": "drain rate at replay_ms 0 vs the bare client's QoS 1 rate",
    "drain_sampler_late_max_ms_replay0": "sampler lateness max during a replay_ms 0 drain vs alone",
    "drain_sampler_missed_polls_replay0": "sampler polls >= 20 ms late during a replay_ms 0 drain, of all",
    "heap_mqtt_code_bytes": "heap: MQTT client + outbox + sink code vs a 64wK heap",
    "heap_mqtt_running_objects_bytes": "heap: MQTT sink running (connected, 3 cursors) vs 64wK",
    "heap_mqtt_total_bytes": "heap: MQTT enabled, total vs 64wK",
    "heap_webhook_code_bytes": "heap: webhook sink + httpc code vs 64wK",
    "heap_webhook_running_1_hooks_bytes": "heap: webhook sink running, 1 receiver vs 64wK",
    "heap_webhook_running_3_hooks_bytes": "heap: webhook sink running, 3 receivers vs 64wK",
}


def cpython_posts_per_s(port, n=300):
    body = b"x" * 130
    t0 = time.time()
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/hook", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
    return n / (time.time() - t0)


def run():
    from mqtt_broker import Broker
    from soak import Hook as Receiver  # a CPython receiver that answers 200

    r = {}
    broker = Broker(tempfile.mkdtemp(prefix="bench-mqtt-"))
    rec = Receiver()
    try:
        r.update(run_script("mp_integrations.py", heap="256wK", args=["mqtt", str(broker.port)]))
        r.update(run_script("mp_integrations.py", heap="256wK", args=["webhook", str(rec.port)]))
        v = r["webhook_posts_per_s"]
        r["webhook_posts_per_s"] = (v[0], round(cpython_posts_per_s(rec.port), 1), v[2])
        for replay_ms in (20, 0):
            r.update(run_script("mp_integrations.py", heap="1024wK",
                                args=["drain", str(broker.port), tempfile.mkdtemp(prefix="bench-drain-"),
                                      str(replay_ms)]))
        for hooks in (1, 3):
            r.update(run_script("mp_integrations.py", heap="256wK",
                                args=["heap", str(broker.port), str(rec.port), str(hooks)]))
    finally:
        rec.close()
        broker.stop()
    v = r["drain_msgs_per_s_replay0"]
    r["drain_msgs_per_s_replay0"] = (v[0], r["mqtt_qos1_msgs_per_s"][0], "msg/s_vs_bare_client")
    rows = []
    for key, label in LABELS.items():
        v, b, unit = r[key]
        ratio = v / b if b else None
        rows.append((label, round(v, 3), round(b, 3), round(ratio, 4) if ratio is not None else None, unit))
    return rows
