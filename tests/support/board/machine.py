"""Test double of the ESP32 port's ``machine`` module for the unix port: the unix port's own ``machine`` (it is an
extensible module: this file extends it, docs/library/index.rst) plus ``WDT``, ``RTC``, ``Pin``, ``unique_id``,
``reset``, ``reset_cause`` as docs/library/machine.WDT.rst, machine.RTC.rst, machine.Pin.rst describe them; names
and signatures checked against ``micropython-esp32-esp32-generic-stubs`` (tests/host/test_board_doubles.py).

Board state lives in files of the board directory (``_board``), so it outlives a reset (a new process) as it
does on the chip: ``rtc.json`` (the RTC's offset from the host clock and its user memory: both survive a reset,
not a power cut, ``power_cycle()``), ``pins.json`` (input levels: {"0": 0} holds GPIO 0 low, a pressed button),
``uid`` (the eFuse MAC), ``wdt`` (each feed writes "count timeout_ms": a timer outside the process, as the
board's is, resets a board that stops feeding; ``tests/host/fielddev.py``), ``reset`` (why the last reset
happened, for ``reset_cause``)."""

import sys
import time

import _board

_path = sys.path
sys.path = []
try:
    from machine import *  # noqa: F401,F403 - the unix port's own (idle, mem32, soft_reset, ...)
finally:
    sys.path = _path
del _path

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_EPOCH_2000 = 946684800  # seconds from 1970 to 2000: the ESP32's time.time() counts from 2000


def unique_id():
    u = _board.load("uid", None)
    if u is None:
        u = "240ac4123456"
        _board.save("uid", u)
    return bytes.fromhex(u)


def reset_cause():
    return _board.load("reset", {}).get("cause", PWRON_RESET)


def reset():
    """Reset the board: the process ends with the code ``sensorbox run`` (and the test harness) takes for
    "start me again"."""
    _board.save("reset", {"cause": HARD_RESET})
    sys.exit(75)


class WDT:
    """The hardware watchdog: once made it cannot be stopped; ``feed`` writes a count for the timer outside."""

    def __init__(self, *, id=0, timeout=5000):
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self._timeout = timeout
        self._n = 0
        self.feed()

    def feed(self):
        self._n += 1
        global fed, last_feed
        fed += 1
        last_feed = time.ticks_ms()
        with open(_board.path("wdt"), "w") as f:
            f.write("{} {}".format(self._n, self._timeout))


fed = 0  # feeds so far (tests)
last_feed = None


def _host_ms():
    return time.time_ns() // 1000000  # the unix port: since 1970


class RTC:
    """The real-time clock. It keeps running across resets (not across a power cut) and starts at 2000-01-01
    after one; ``datetime`` reads and sets it as (year, month, day, weekday, hours, minutes, seconds,
    subseconds), weekday 0 = Monday."""

    def __init__(self, id=0, *, datetime=None):
        if datetime is not None:
            self.datetime(datetime)

    def _state(self):
        s = _board.load("rtc.json", None)
        if s is None:  # power on: the RTC starts at 2000-01-01 00:00:00
            s = {"offset": _EPOCH_2000 * 1000 - _host_ms(), "memory": ""}
            _board.save("rtc.json", s)
        return s

    def _now(self):
        """Milliseconds since 1970 on this RTC."""
        off = self._state()["offset"]  # (first: a power-on state is made from the host clock read now)
        return _host_ms() + off

    def datetime(self, datetimetuple=None):
        if datetimetuple is None:
            t = self._now()
            tm = time.gmtime(t // 1000)
            return (tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], t % 1000 * 1000)
        y, mo, d, _wd, h, mi, s, sub = datetimetuple
        want = time.mktime((y, mo, d, h, mi, s, 0, 0)) * 1000 + sub // 1000
        st = self._state()
        st["offset"] = want - _host_ms()
        _board.save("rtc.json", st)

    def init(self, datetime=None):
        if datetime is not None:
            t = tuple(datetime) + (0,) * (8 - len(datetime))
            self.datetime((t[0], t[1], t[2], 0, t[3], t[4], t[5], t[6]))

    def memory(self, data=None):
        st = self._state()
        if data is None:
            return bytes.fromhex(st.get("memory", ""))
        if len(data) > 2048:
            raise ValueError("buffer too long")
        st["memory"] = bytes(data).hex()
        _board.save("rtc.json", st)


def power_cycle():
    """Tests: a power cut. The RTC starts again at 2000, its memory is empty, the next reset cause is power-on."""
    for name in ("rtc.json", "reset"):
        try:
            import os

            os.remove(_board.path(name))
        except OSError:
            pass


class Pin:
    """A GPIO. Inputs read their level from ``pins.json`` (a test holds a button down there); an input with
    the pull-up enabled and nothing set reads 1."""

    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        self._id = id
        self._mode = mode
        self._pull = pull
        self._out = value

    def value(self, x=None):
        if x is not None:
            self._out = 1 if x else 0
            return None
        if self._mode == Pin.OUT:
            return self._out or 0
        v = _board.load("pins.json", {}).get(str(self._id))
        if v is None:
            return 1 if self._pull == Pin.PULL_UP else 0
        return 1 if v else 0

    def __call__(self, x=None):
        return self.value(x)
