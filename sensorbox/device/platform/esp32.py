"""ESP32 boards (ESP32, ESP32-S3) running MicroPython. Not exercised on the host: needs the board.

Sensors (``make_sensor``): an LSM6DS3 / LSM6DS3TR-C accelerometer on I2C bus 0 (pins ``board.i2c_sda``/``_scl``,
address ``accel.i2c_addr``) and an I2S MEMS microphone on I2S 0 (``board.i2s_sck``/``_ws``/``_sd``). A sensor
whose pins are not set, or whose part does not answer, is left out with a warning in the log: the other one
samples on. ``make_sensor`` takes the ``machine`` module as an argument so the unix port can test the wiring
with fakes of the hardware (tests/device/test_board_sensors.py).

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

    def unique_id(self, log=None):
        import binascii
        import machine

        return binascii.hexlify(machine.unique_id()).decode()

    def flash_stats(self):
        st = os.statvfs(self.data_dir)
        return st[0] * st[2], st[0] * st[3]

    def http_port(self, configured):
        return configured

    def sensor(self, name, config, log):
        import machine

        return make_sensor(name, config, log, self.epoch_ms, machine)

    async def start_network(self, config, log):
        import asyncio

        import network

        from sensorbox.device import lazy

        try:  # anything but {"ssid", "password"} (not UTF-8, wrong types, a directory) is set aside as .bad
            fs = lazy.load("sensorbox.device.files")
            creds = fs.load_json(self.data_dir + "/wifi.json", log, fs.wifi_ok)
        finally:
            fs = None
            lazy.unload("sensorbox.device.files")
        if creds is None:
            log.warning("net", "no wifi.json: starting an access point for set-up")
            ap = network.WLAN(network.AP_IF)
            ap.active(True)
            ap.config(essid="sensorbox-" + self.unique_id()[-4:])
            return False
        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        if not sta.isconnected():
            sta.connect(creds["ssid"], creds.get("password", ""))
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

    def wifi(self):
        """(IP address, RSSI in dBm, MAC) of the Wi-Fi: the station's when connected, else the set-up access
        point's address (None when it is off) and no RSSI."""
        import network

        sta = network.WLAN(network.STA_IF)
        mac = ":".join("{:02x}".format(b) for b in sta.config("mac"))
        if sta.isconnected():
            return sta.ifconfig()[0], sta.status("rssi"), mac
        ap = network.WLAN(network.AP_IF)
        return (ap.ifconfig()[0] if ap.active() else None), None, mac

    def watchdog(self, timeout_ms):
        """The hardware watchdog, started now (it cannot be stopped): the supervisor feeds it while all is well."""
        import machine

        return machine.WDT(timeout=timeout_ms)

    def reset(self):
        import machine

        machine.reset()


def make_sensor(name, config, log, clock, machine):
    """The driver for sensor ``name`` on this board, or None (with a warning saying why) when it is not wired
    (pins -1) or does not answer. ``machine``: the ``machine`` module (or a stand-in with I2C, I2S, Pin)."""
    if name == "accel":
        sda = config.get("board.i2c_sda")
        scl = config.get("board.i2c_scl")
        if sda < 0 or scl < 0:
            log.warning("accel", "board.i2c_sda/board.i2c_scl not set: no accelerometer")
            return None
        from sensorbox.device.sensors.lsm6ds3 import LSM6DS3

        addr = config.get("accel.i2c_addr")
        try:
            i2c = machine.I2C(0, sda=machine.Pin(sda), scl=machine.Pin(scl), freq=config.get("board.i2c_freq"))
            drv = LSM6DS3(i2c, addr, config, clock)
            part = drv.probe()
        except (OSError, ValueError) as e:
            log.warning("accel", str(e))
            return None
        log.info("accel", "{} at 0x{:02x} (I2C sda={} scl={}), {} Hz".format(part, addr, sda, scl, drv.rate_hz))
        return drv
    if name == "mic":
        sck = config.get("board.i2s_sck")
        ws = config.get("board.i2s_ws")
        sd = config.get("board.i2s_sd")
        if sck < 0 or ws < 0 or sd < 0:
            log.warning("mic", "board.i2s_sck/board.i2s_ws/board.i2s_sd not set: no microphone")
            return None
        from sensorbox.device.sensors.i2s_mic import I2SMicrophone

        I2S = machine.I2S

        def make_i2s(rate_hz, stereo, ibuf):
            return I2S(0, sck=machine.Pin(sck), ws=machine.Pin(ws), sd=machine.Pin(sd), mode=I2S.RX, bits=32,
                       format=I2S.STEREO if stereo else I2S.MONO, rate=rate_hz, ibuf=ibuf)

        try:
            return I2SMicrophone(make_i2s, config, clock, config.get("mic.channel"))
        except ValueError as e:
            log.warning("mic", str(e))
            return None
    return None
