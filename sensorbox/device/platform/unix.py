"""The MicroPython unix port as a device: the simulated sensorbox that ``sensorbox run`` starts.

Settings come from the environment, which ``sensorbox run`` fills in:
``SENSORBOX_DATA`` (data directory), ``SENSORBOX_PORT`` (HTTP port, overrides the config),
``SENSORBOX_REPLAY`` (the .npy recording the simulated accelerometer replays), ``SENSORBOX_HOST`` (address to
listen on, 127.0.0.1 unless set), ``SENSORBOX_ADMIN_PASSWORD`` (admin password on first start; random if unset), ``SENSORBOX_WWW`` (the
bundle's ``www`` directory of static files).
"""

import os
import sys
import time

from sensorbox.device.platform.clock import Clock


class Platform:
    name = "unix"
    warm_skip = ("sensorbox.device.sensors.lsm6ds3", "sensorbox.device.sensors.i2s_mic",
                 "sensorbox.device.sensors.pcm_fast",  # board drivers: never loaded on the host
                 "sensorbox.device.net.")  # the ESP32's Wi-Fi (the host's network is up)

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
        """The wall clock (``platform/clock.Clock``): the host's time, known (the host keeps it with NTP)."""
        return self._clock

    def unique_id(self):
        # A real board reads it from eFuse; here it is made once and kept with the data.
        if self._id is None:
            path = self.data_dir + "/device-id"
            try:
                with open(path) as f:
                    self._id = f.read().strip()
            except OSError:
                import binascii

                self._id = binascii.hexlify(os.urandom(6)).decode()
                with open(path, "w") as f:
                    f.write(self._id)
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
        if name == "mic":
            from sensorbox.device.sensors.sim_mic import SignalMicrophone

            return SignalMicrophone(config, self.epoch_ms)
        return None

    async def start_network(self, device):
        return True  # the host's network is up

    def reset(self):
        # Exit with a code the supervisor script (sensorbox run) understands as "restart me".
        sys.exit(75)
