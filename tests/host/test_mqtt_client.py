"""The device's MQTT client (sensorbox/device/integrations/mqtt.py) on the MicroPython unix port against a real mosquitto,
with a paho-mqtt peer: auth, QoS 0/1, UTF-8 payloads, subscribe/inbound, keepalive, last will, reconnect."""

import json
import signal
import subprocess
import time

import pytest

from sensorbox.host import bundle
from mqtt_broker import Broker, Collector

SCRIPT = r'''
import sys
import asyncio
from sensorbox.device.integrations.mqtt import MQTTClient, MQTTError

port, user, pw, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
got = []

def on_msg(t, p, r):
    got.append((t, p))

async def main():
    c = MQTTClient("mp-test", "127.0.0.1", port, user=user, password=pw, keepalive=2,
                   will=("t/status", b"offline", True, 1), on_message=on_msg, timeout_ms=2000)
    if mode == "badpw":
        c.password = "wrong"
        try:
            await c.connect()
        except MQTTError as e:
            print("REFUSED", e)
        return
    await c.connect()
    await c.subscribe("t/in", 1)
    await c.publish("t/status", b"online", retain=True, qos=1)
    for i in range(40):
        await c.publish("t/data", '{"i":%d,"v":"25.5 \u00b0C, 3 \u00b5s"}' % i, qos=i % 2)
    print("SENT")
    while not got:
        await asyncio.sleep_ms(10)
    await c.publish("t/echo", got[0][1], qos=1)
    await asyncio.sleep(5)  # silence longer than the keepalive: PINGREQs keep the connection
    print("ALIVE", c.connected, c.connects)
    if mode == "restart":
        print("WAITDOWN")
        while c.connected:
            await asyncio.sleep_ms(20)
        print("DOWN", c.error)
        await c.ensure(min_ms=200, max_ms=1000)
        got.clear()
        print("UP", c.connects)
        while not got:
            await asyncio.sleep_ms(10)
        await c.publish("t/echo2", got[0][1], qos=1)
    if mode == "kill":
        print("IDLE")
        await asyncio.sleep(60)
    await c.publish("t/status", b"offline", retain=True, qos=1)
    await c.disconnect()
    print("DONE")

asyncio.run(main())
'''

USERS = {"dev": "s3cret-\u00e9"}


def run_script(tmp_path, port, mode):
    path = tmp_path / "mqtt_script.py"
    path.write_text(SCRIPT)
    env = bundle.micropython_env(bundle.build("unix"))
    return subprocess.Popen([bundle.micropython_path(), "-X", "heapsize=64wK", str(path), str(port), "dev",
                             USERS["dev"], mode], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=bundle.REPO)


def wait_line(proc, word, timeout=60):
    t0 = time.time()
    lines = []
    while time.time() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(word):
            return line
    raise AssertionError("no {} from the device script; output:\n{}".format(word, "".join(lines)))


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker", users=USERS)
    yield b
    b.stop()


@pytest.mark.light
def test_publish_subscribe_keepalive_and_clean_offline(tmp_path, broker):
    col = Collector(broker.port, user="dev", password=USERS["dev"])
    try:
        p = run_script(tmp_path, broker.port, "normal")
        wait_line(p, "SENT")
        col.wait(lambda m: len([x for x in m if x[0] == "t/data"]) == 40)
        data = [json.loads(x[1].decode("utf-8")) for x in col.on("t/data")]
        assert [d["i"] for d in data] == list(range(40))  # order kept, QoS 0 and 1 interleaved
        assert all(d["v"] == "25.5 \u00b0C, 3 \u00b5s" for d in data)  # non-ASCII intact (byte lengths)
        col.publish("t/in", "r\u00e9load \u00b0".encode())
        col.wait(lambda m: any(x[0] == "t/echo" for x in m))
        assert col.on("t/echo")[0][1] == "r\u00e9load \u00b0".encode()
        line = wait_line(p, "ALIVE")
        assert line.split() == ["ALIVE", "True", "1"]  # 5 s idle with keepalive 2 s: still the first connection
        wait_line(p, "DONE")
        assert p.wait(10) == 0
        col.wait(lambda m: [x[1] for x in m if x[0] == "t/status"][-1:] == [b"offline"])
    finally:
        col.close()


def test_bad_password_is_refused(tmp_path, broker):
    p = run_script(tmp_path, broker.port, "badpw")
    line = wait_line(p, "REFUSED")
    assert "code 5" in line  # not authorised
    p.wait(10)


@pytest.mark.light
def test_last_will_on_kill(tmp_path, broker):
    col = Collector(broker.port, user="dev", password=USERS["dev"])
    try:
        p = run_script(tmp_path, broker.port, "kill")
        wait_line(p, "SENT")
        col.wait(lambda m: any(x[0] == "t/status" and x[1] == b"online" for x in m))
        col.publish("t/in", b"x")
        wait_line(p, "IDLE")
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        col.wait(lambda m: [x[1] for x in m if x[0] == "t/status"][-1:] == [b"offline"])
    finally:
        col.close()


@pytest.mark.light
def test_reconnects_after_broker_restart(tmp_path, broker):
    col = Collector(broker.port, user="dev", password=USERS["dev"])
    try:
        p = run_script(tmp_path, broker.port, "restart")
        wait_line(p, "SENT")
        col.publish("t/in", b"first")
        wait_line(p, "WAITDOWN")
        broker.stop()
        line = wait_line(p, "DOWN")
        assert "None" not in line  # the reason is kept
        time.sleep(1.0)
        broker.start()
        line = wait_line(p, "UP", timeout=60)
        assert line.split() == ["UP", "2"]
        # the collector reconnects by itself; the device re-subscribed: a new command reaches it
        t0 = time.time()
        while not col.on("t/echo2") and time.time() - t0 < 20:
            try:
                col.publish("t/in", "zw\u00f6lf".encode())
            except Exception:
                pass
            time.sleep(0.5)
        assert col.on("t/echo2")[0][1] == "zw\u00f6lf".encode()
        wait_line(p, "DONE")
    finally:
        col.close()
