"""MQTT over TLS from the device app (MicroPython unix port, mbedTLS) to a real mosquitto with a TLS listener whose
certificate is made in the test (openssl CLI): with the right CA configured the certificate is verified and data
flows; with another CA the connection is refused and status and log say why; the CA can be a file on the device.
A paho subscriber on the broker's plain listener sees what arrived."""

import json
import os
import time

import pytest

from sensorbox.host import bundle

from mqtt_broker import Broker, Certs, Collector
from test_mqtt_sink import PREFIX

#: A TLS context takes one ~3 KB block of heap (plus the CA), made again at each CA change in the old one's block
#: (integrations/tls.py); this test changes the CA three times, which at 152wK a fragmented heap could not give
#: while the new CA's DER was made after the old context went. It runs at the app's heap.
TLS_HEAP = bundle.APP_HEAP


@pytest.fixture
def certs(tmp_path):
    return Certs(tmp_path / "certs")


def put(dev, cfg):
    """PUT /api/config; a 503 ("device is short of memory; retry", while TLS handshakes come and go at this
    heap size) is retried as the API asks."""
    for _ in range(5):
        r = dev.put("/api/config", cfg)
        if r.status != 503:
            break
        time.sleep(0.5)
    assert r.status == 200, (r.status, r.body)


def wait_mqtt(dev, cond, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = dev.status()["mqtt"]
        if cond(st):
            return st
        time.sleep(0.2)
    s = dev.status()
    raise AssertionError("mqtt status never matched: {} (service: {})".format(s["mqtt"], s["tasks"]["mqtt"]))


def test_tls_verified_with_the_right_ca_refused_with_another(tmp_path, certs, device_factory):
    broker = Broker(tmp_path / "broker", tls=certs)
    col = Collector(broker.port)
    try:
        dev = device_factory(data_dir=tmp_path / "dev", heap=TLS_HEAP)
        base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
        put(dev, {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.tls_port,
                  "mqtt.prefix": PREFIX, "mqtt.tls": True, "mqtt.tls_ca": Certs.one_line(certs.ca)})
        col.wait(lambda m: len([x for x in m if x[0] == base + "/soundlevel"]) >= 2)
        st = dev.status()["mqtt"]
        assert st["connected"] is True and st["tls_verified"] is True and st["last_error"] is None
        sl = json.loads(col.on(base + "/soundlevel")[-1][1])
        assert 0 < sl["leq"] < 140
        # another CA: the broker's certificate is refused, nothing is sent, the reason is in status and log
        put(dev, {"mqtt.tls_ca": Certs.one_line(certs.other_ca)})
        st = wait_mqtt(dev, lambda s: s.get("last_error") and "trusted CA" in s["last_error"])
        n = len(col.on(base + "/soundlevel"))
        assert st["connected"] is False and st["state"] == "connecting"
        assert st["last_error"] == "ValueError: The certificate is not correctly signed by the trusted CA"
        time.sleep(2)
        assert len(col.on(base + "/soundlevel")) == n  # no data went over the unverified connection
        assert "cannot connect to 127.0.0.1: ValueError: The certificate is not correctly signed" in dev.output()
        # a CA that is not a certificate: a clear error naming the key, no connection attempt
        put(dev, {"mqtt.tls_ca": "-----BEGIN CERTIFICATE----- bm90 -----END CERTIFICATE-----"})
        st = wait_mqtt(dev, lambda s: s["state"].startswith("mqtt.tls_ca:"))
        assert st["state"] == "mqtt.tls_ca: not a certificate (PEM, base64 DER or a file path)"
        # the right CA as a DER file on the device: verified again, the backlog of the outage is delivered
        import base64
        der = base64.b64decode("".join(x for x in open(certs.ca).read().split("\n") if x and "-----" not in x))
        path = os.path.join(str(tmp_path / "dev"), "broker-ca.der")
        with open(path, "wb") as f:
            f.write(der)
        t_to = dev.status()["time_ms"] - 2500
        put(dev, {"mqtt.tls_ca": path})
        col.wait(lambda m: any(json.loads(x[1])["t"] >= t_to for x in m if x[0] == base + "/soundlevel"))
        st = wait_mqtt(dev, lambda s: s["connected"])
        assert st["tls_verified"] is True
        assert "MemoryError" not in dev.output()
    finally:
        col.close()
        broker.stop()
