"""ESP32 boards (ESP32, ESP32-S3) running MicroPython. Not exercised on the host: needs the board.

Wi-Fi credentials come from ``wifi.json`` in the data directory ({"ssid": ..., "password": ...}), written by the
host's deploy step; they are never part of the config the API returns.
"""

import os
import time

from sensorbox.device.platform.clock import Clock, _EPOCH_2000_MS


class Platform:  # pragma: no cover - needs the board
    name = "esp32"
    warm_skip = ("sensorbox.device.sensors.sim_",)  # the host's simulated sensors
    www_dir = "/www"
    http_host = "0.0.0.0"

    def __init__(self):
        self.data_dir = "/data"
        try:
            os.mkdir(self.data_dir)
        except OSError:
            pass
        # time.time() counts from 2000 on the ESP32 port.
        self._clock = Clock(time.time(), _EPOCH_2000_MS)

    def epoch_ms(self):
        return self._clock.epoch_ms()

    def unique_id(self):
        import binascii
        import machine

        return binascii.hexlify(machine.unique_id()).decode()

    def flash_stats(self):
        st = os.statvfs(self.data_dir)
        return st[0] * st[2], st[0] * st[3]

    def http_port(self, configured):
        return configured

    def sensor(self, name, config, log):
        # Board drivers are added per board with their pins; none is wired on a bare ESP32.
        return None

    async def start_network(self, config, log):
        import asyncio
        import json

        import network

        try:
            with open(self.data_dir + "/wifi.json") as f:
                creds = json.load(f)
        except (OSError, ValueError):
            log.warning("net", "no wifi.json: starting an access point for set-up")
            ap = network.WLAN(network.AP_IF)
            ap.active(True)
            ap.config(essid="sensorbox-" + self.unique_id()[-4:])
            return False
        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        if not sta.isconnected():
            sta.connect(creds["ssid"], creds["password"])
            for _ in range(100):
                if sta.isconnected():
                    break
                await asyncio.sleep_ms(100)
        if not sta.isconnected():
            log.error("net", "wifi connection failed")
            return False
        log.info("net", "wifi up: {}".format(sta.ifconfig()[0]))
        try:
            import ntptime

            ntptime.settime()
            self._clock.resync(time.time() * 1000 + _EPOCH_2000_MS)
        except Exception as e:
            log.warning("net", "ntp failed: {}".format(e))
        return True

    def reset(self):
        import machine

        machine.reset()
