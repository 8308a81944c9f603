"""What differs between boards, behind one small interface.

``get()`` returns the platform object for this interpreter: ``unix.Platform`` on the MicroPython unix port
(the simulated device), ``esp32.Platform`` on an ESP32. The app only uses these methods:

- ``name``: short platform name; ``data_dir``: where the device keeps its files.
- ``unique_id(log)``: a stable hex id of this device (``log``: where to report a stored id that was unreadable).
- ``epoch_ms()``: wall-clock time in ms since 1970 (int), never going backwards during a run.
- ``clock()``: that clock (``Clock``, below): ``known``, ``ahead_ms`` (``store/recover.floor``: never before what
  was stored).
- ``flash_stats()``: (total_bytes, free_bytes) of the file system holding ``data_dir``.
- ``http_port(configured)``: the port to serve on.
- ``sensor(name, config, log)``: the driver for sensor ``name`` ("accel", "mic"), or None if absent.
- ``start_network(device)``: bring the network up (a coroutine: starts what keeps it up, e.g. a service).
- ``watchdog(timeout_ms)``: start the board's watchdog (``machine.WDT``'s interface: ``feed()``), or None.
- ``reset()``: restart the device.

``Clock`` (here, not a module of its own: a 4 KB flash block less) is a wall clock in epoch milliseconds built on
``ticks_ms``, so it is monotonic during a run. ``time.time()`` is an int of seconds on an ESP32 (epoch 2000) and a
float on the unix port (epoch 1970); both can jump when NTP sets the clock. The device keeps one reference point
and counts ticks from it, so timestamps in the store never go backwards. ``resync`` moves the reference forward
only.
"""

import sys
import time

_platform = None


def get():
    global _platform
    if _platform is None:
        if sys.platform == "esp32":  # pragma: no cover - needs the board
            from sensorbox.device.platform import esp32 as impl
        else:
            from sensorbox.device.platform import unix as impl
        _platform = impl.Platform()
    return _platform


class Clock:
    """``known``: the time came from a source that knows it (NTP, the host) rather than a board's RTC after a
    power cut; ``ahead_ms``: how far this clock runs ahead of its source because it never steps back
    (``store/recover.floor``, an older ``resync``)."""

    known = True
    ahead_ms = 0

    def __init__(self, s, known=True):
        # s: the time now, in seconds since 1970
        self._ref_ms = int(s * 1000)
        self._ref_ticks = time.ticks_ms()
        self._last = self._ref_ms
        if not known:
            self.known = False

    def epoch_ms(self):
        now = time.ticks_ms()
        d = time.ticks_diff(now, self._ref_ticks)
        t = self._ref_ms + d
        # Re-anchor well before ticks_ms wraps (ticks_diff is valid for 2**29 ms on 32-bit ports, ~6 days).
        if d > 86400000:
            self._ref_ms = t
            self._ref_ticks = now
        if t < self._last:
            return self._last
        self._last = t
        return t

    def resync(self, ms):
        """A better wall-clock reading arrived (NTP, a browser): adopt it if it is ahead; one behind is not taken
        (time never goes back) but counted in ``ahead_ms``. The time is known from now on. Returns how far the
        clock moved forward (0: not)."""
        cur = self.epoch_ms()
        self.known = True
        if ms > cur:
            self._ref_ms = ms
            self._ref_ticks = time.ticks_ms()
            self._last = ms
            self.ahead_ms = 0
            return ms - cur
        self.ahead_ms = cur - ms
        return 0
