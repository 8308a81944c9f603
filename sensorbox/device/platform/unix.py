"""The MicroPython unix port as a device: the simulated sensorbox that ``sensorbox run`` starts.

Settings come from the environment, which ``sensorbox run`` fills in:
``SENSORBOX_DATA`` (data directory), ``SENSORBOX_PORT`` (HTTP port, overrides the config),
``SENSORBOX_REPLAY`` (the .npy recording the simulated accelerometer replays), ``SENSORBOX_HOST`` (address to
listen on, 127.0.0.1 unless set), ``SENSORBOX_ADMIN_PASSWORD`` (admin password on first start; random if unset), ``SENSORBOX_WWW`` (the
bundle's ``www`` directory of static files), ``SENSORBOX_WATCHDOG_S`` (the watchdog's timeout in seconds instead of
the supervisor's; 0 = no watchdog).
"""

import os
import sys
import time

from micropython import const

from sensorbox.device.platform import Clock

_WAV = const("sensorbox.device.sensors.sim_wav")


class Platform:
    name = "unix"
    warm_skip = ("sensorbox.device.sensors.lsm6ds3", "sensorbox.device.sensors.i2s_mic",
                 "sensorbox.device.sensors.pcm",  # board drivers: never loaded on the host
                 "sensorbox.device.net.",  # the ESP32's Wi-Fi (the host's network is up)
                 "sensorbox.shared.analysis",  # the browser's (in this bundle for the tests only)
                 "sensorbox.device.sensors.sim_wav")  # replaying WAV files: only with sim.mic_wav set

    def __init__(self):
        self.data_dir = os.getenv("SENSORBOX_DATA") or "./var"
        self.replay_path = os.getenv("SENSORBOX_REPLAY") or "data/watch_excerpt.npy"
        self._port = os.getenv("SENSORBOX_PORT")
        self.http_host = os.getenv("SENSORBOX_HOST") or "127.0.0.1"
        self.admin_password = os.getenv("SENSORBOX_ADMIN_PASSWORD")
        self.www_dir = os.getenv("SENSORBOX_WWW") or "www"
        self._clock = Clock(time.time())
        self._id = None

    def epoch_ms(self):
        return self._clock.epoch_ms()

    def clock(self):
        """The wall clock (``platform.Clock``): the host's time, known (the host keeps it with NTP)."""
        return self._clock

    def unique_id(self, log):
        # A real board reads it from eFuse; here it is made once and kept with the data (files.device_id).
        if self._id is None:
            from sensorbox.device import lazy

            self._id = lazy.call("sensorbox.device.files", "device_id", self.data_dir + "/device-id", log)
        return self._id

    def flash_stats(self):
        st = os.statvfs(self.data_dir)
        return st[0] * st[2], st[0] * st[3]

    def http_port(self, configured):
        return int(self._port) if self._port else configured

    def sensor(self, name, config, log):
        if name == "accel":
            from sensorbox.device.sensors.sim_accel import ReplayAccelerometer

            return ReplayAccelerometer(self.replay_path, config, self.epoch_ms)
        if name == "mic" and config.get("sim.mic_wav"):  # a folder of WAV files, replayed (sim_wav.py)
            return __import__(_WAV, None, None, ("make",)).make(config.get("sim.mic_wav"), config, self.epoch_ms)
        if name == "mic":
            from sensorbox.device.sensors.sim_mic import SignalMicrophone

            return SignalMicrophone(config, self.epoch_ms)
        return None

    async def start_network(self, device):
        return True  # the host's network is up

    def wifi(self):
        """(IP address, RSSI in dBm, MAC) of the board's network, None for what it has not: here the address the
        web server listens on, and no radio."""
        h = self.http_host
        return ("127.0.0.1" if h == "0.0.0.0" else h), None, None

    def watchdog(self, timeout_ms):
        """The board's watchdog here: ``WDT`` (below), unless ``SENSORBOX_WATCHDOG_S`` says otherwise."""
        s = os.getenv("SENSORBOX_WATCHDOG_S")
        if s:
            timeout_ms = int(float(s) * 1000)
        return WDT(timeout=timeout_ms) if timeout_ms > 0 else None

    def reset(self):
        # Exit with a code the supervisor script (sensorbox run) understands as "restart me".
        sys.exit(75)


class WDT:
    """``machine.WDT`` for the unix port, with its interface (``WDT(timeout=ms)``, ``feed()``; checked against
    MicroPython's ESP32 stubs by tests/host/test_platform_stubs.py). The timer itself is outside, as a board's is:
    ``feed`` writes a count and the timeout to ``<data>/watchdog``, and ``sensorbox run`` (``host/watchdog.py``)
    ends the device with SIGALRM when the count stops changing for the timeout, then starts it again. (A thread
    here kept random garbage alive, as the collector scans its stack too; a shell loop forked from here kept
    copies of the sockets open.)"""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self._path = (os.getenv("SENSORBOX_DATA") or ".") + "/watchdog"
        self._n = 0
        self.feed()

    def feed(self):
        self._n = (self._n + 1) % 1000000
        with open(self._path, "w") as f:
            f.write("{} {}".format(self._n, self.timeout))
