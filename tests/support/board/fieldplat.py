"""The ESP32 platform (``platform/esp32.py``) on the unix port over the board doubles of this folder: a simulated
ESP32 for end-to-end tests (``fieldmain.py`` makes it the device's platform, tests/host/fielddev.py). Only where
its files and sockets are differs from a board: the data directory, the UI's files, the HTTP and DNS ports and addresses come
from the environment as for the unix platform; Wi-Fi, RTC, watchdog, partitions and reset are the doubles'.

No sensor is wired (the board's I2C and I2S are not simulated here) unless ``SENSORBOX_REPLAY`` names a
recording: then the accelerometer is the unix port's simulated one (``sensors/sim_accel.py``) replaying it. For
the safe-mode tests the accelerometer driver of the app deployed over USB has a bug: at ``accel.rate_hz`` 100 it
raises at start, every time (a config that crashes a service at boot); an update's app (in a slot) has it fixed.
``SENSORBOX_WDT_MS`` and ``SENSORBOX_HEALTHY_MS`` shorten the health guard's watchdog timeout and healthy time
(supervisor.tick) so that boot loops take seconds; ``SENSORBOX_STEP_MS`` pauses after each step of an
update (ota.py) so that a test can kill the board right there."""

import os
import sys

from sensorbox.device.platform import esp32


class Platform(esp32.Platform):
    http_host = "127.0.0.1"
    dns_host = "127.0.0.1"

    def __init__(self):
        super().__init__(os.getenv("SENSORBOX_DATA") or "./var")
        self.www_dir = os.getenv("SENSORBOX_WWW") or "www"
        self.dns_port = int(os.getenv("SENSORBOX_DNS_PORT") or "53")
        self.admin_password = os.getenv("SENSORBOX_ADMIN_PASSWORD")
        self._port = os.getenv("SENSORBOX_PORT")
        self.replay = os.getenv("SENSORBOX_REPLAY")
        # (the watchdog's timeout and the healthy stretch: supervisor.tick; a pause after each step of an update:
        # ota.py)
        self.ms = (int(os.getenv("SENSORBOX_WDT_MS") or "30000"), int(os.getenv("SENSORBOX_HEALTHY_MS") or "60000"),
                   int(os.getenv("SENSORBOX_STEP_MS") or "0"), int(os.getenv("SENSORBOX_CONFIRM_MS") or "600000"))

    def sensor(self, name, config, log):
        if name == "accel" and config.get("accel.rate_hz") == 100 and sys.path[0][-10:-5] != "/app/":
            raise RuntimeError("driver bug: the simulated accelerometer cannot start at 100 Hz")
        if name == "accel" and self.replay:
            from sensorbox.device.sensors.sim_accel import ReplayAccelerometer

            return ReplayAccelerometer(self.replay, config, self.epoch_ms)
        return super().sensor(name, config, log)

    def http_port(self, configured):
        return int(self._port) if self._port else configured
