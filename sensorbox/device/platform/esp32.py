"""ESP32 boards (ESP32, ESP32-S3) running MicroPython.

On the host it runs unchanged against the test doubles of ``network``, ``machine`` and ``esp32`` in
``tests/support/board`` (which follow MicroPython's documented API and its published ESP32 stubs).

Sensors (``make_sensor``): an LSM6DS3 / LSM6DS3TR-C accelerometer on I2C bus 0 (pins ``board.i2c_sda``/``_scl``,
address ``accel.i2c_addr``) and an I2S MEMS microphone on I2S 0 (``board.i2s_sck``/``_ws``/``_sd``). A sensor
whose pins are not set, or whose part does not answer, is left out with a warning in the log: the other one
samples on. ``make_sensor`` takes the ``machine`` module as an argument so the unix port can test the wiring
with fakes of the hardware (tests/device/test_board_sensors.py).

The network is the station service (``net/station.py``): Wi-Fi networks from ``wifi.json`` in the data
directory, written by the set-up page or the host's deploy step, never part of the config the API returns;
without one, or after ``wifi.fallback_s`` without a connection, the set-up access point (``net/portal.py``).
The wall clock is the RTC (``machine.RTC``), which NTP sets (``net/portal.py``'s ``query``).
"""

import os
import time

from sensorbox.device.platform import Clock

_SYNCED = b"sbt1"  # in the RTC's memory: NTP set the RTC since the last power cut
_Y2024_MS = 1704067200000


class Platform:
    name = "esp32"
    # the host's simulated sensors; and the drivers, imported for good just after boot.warm (``sensor``): pcm.py's
    # viper code, which warm would load (and ``lazy.unload`` leave behind: native code is not freed) before the
    # drivers load it again (gyro17's finding)
    warm_skip = ("sensorbox.device.sensors.sim_", "sensorbox.device.sensors.pcm", "sensorbox.device.sensors.lsm6ds3",
                 "sensorbox.device.sensors.i2s_mic")
    www_dir = "/www"
    http_host = "0.0.0.0"
    dns_port = 53  # the set-up portal's DNS responder

    def __init__(self, data_dir="/data"):
        self.data_dir = data_dir
        try:
            os.mkdir(self.data_dir)
        except OSError:
            pass
        import machine

        # The RTC keeps the time across resets, not across a power cut (then it starts in 2000): the time is known
        # only when NTP set it since the last power cut (a mark in the RTC's memory, which a power cut clears too).
        rtc = machine.RTC()
        t = self.rtc_ms()
        self._clock = Clock(t / 1000, rtc.memory()[:4] == _SYNCED and t > _Y2024_MS)
        self.station = None  # the station service (net/station.py), made by start_network

    def rtc_ms(self):
        """The RTC's time in epoch ms (it starts at 2000-01-01 after a power cut)."""
        import machine

        return _rtc_epoch_ms(machine.RTC().datetime())

    def set_time(self, epoch_ms):
        """A better time arrived (NTP): the RTC and the wall clock take it. Returns how far the clock moved forward
        (``Clock.resync``)."""
        import machine

        t = time.gmtime(epoch_ms // 1000 - (946684800 if time.gmtime(0)[0] == 2000 else 0))
        rtc = machine.RTC()
        rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], (epoch_ms % 1000) * 1000))
        rtc.memory(_SYNCED)
        return self._clock.resync(epoch_ms)

    def clock(self):
        """The wall clock (``platform.Clock``: ``known``, ``ahead_ms``)."""
        return self._clock

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

    async def start_network(self, device):
        """Start the station service (a supervised service of its own: it keeps the network up)."""
        import network

        from sensorbox.device.net.station import Station

        self.station = Station(device, network)
        device.supervisor.add("wifi", self.station.run)  # (restarted for device.name: config_schema)

    def status(self, out):
        """What this board adds to ``/api/status``: ``wifi`` (the station's state, ``net/station.py``)."""
        if self.station is not None:
            out["wifi"] = self.station.status()

    def firmware(self, ok=False):
        """The running app partition's label (firmware updates: ``ota.py``); ``ok``: the firmware on trial stayed
        healthy, so the bootloader keeps it (``esp32.Partition.mark_app_valid_cancel_rollback``)."""
        from esp32 import Partition

        if ok:
            Partition.mark_app_valid_cancel_rollback()
        # (esp32.rst: an id is a label or BOOT / RUNNING; the stubs type it as a label only)
        return Partition(Partition.RUNNING).info()[4]  # type: ignore[arg-type]

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
        """The hardware watchdog, started now (it cannot be stopped): the health guard (``supervisor.tick``) feeds
        it while all is well."""
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


def _rtc_epoch_ms(dt):
    """Epoch ms (since 1970) of an RTC reading ``(year, month, day, weekday, hours, minutes, seconds,
    subseconds)`` as ``machine.RTC().datetime()`` gives it (subseconds in µs on the ESP32), with integers only:
    ``time.mktime`` counts from 2000 on an ESP32 and from 1970 elsewhere."""
    y, m = dt[0], dt[1]
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + dt[2] - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return ((days * 24 + dt[4]) * 60 + dt[5]) * 60000 + dt[6] * 1000 + dt[7] // 1000
