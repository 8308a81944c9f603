"""The boot counter behind safe mode (``boot.json`` in the data directory), loaded only while it is read or written.

``{"boots": n, "reason": ..., "trace": ..., "at": epoch ms}``: ``boots`` counts consecutive boots that did not stay
healthy for a minute (``guard``); each boot adds one before anything else can fail, a healthy minute sets it to 0.
From ``SAFE_AFTER`` on the device boots in safe mode (network, UI, updates; no sensors, store or analysis), with
the last reason and traceback kept for ``/api/status`` and the UI. An unreadable file counts as no unhealthy boot
and is reported, never a reason not to start. Writes go through a ``.tmp`` and a rename: a power cut leaves the
old or the new file.
"""

import io
import json
import os
import sys
import time

from micropython import const

SAFE_AFTER = const(3)
_TRACE = const(1500)  # characters of traceback kept


def _path(data_dir):
    return data_dir + "/boot.json"


def read(data_dir):
    try:
        with open(_path(data_dir)) as f:
            s = json.load(f)
        if isinstance(s, dict) and isinstance(s.get("boots"), int):
            return s, None
        err = "not a boot record"
    except OSError:
        return {"boots": 0}, None
    except ValueError as e:
        err = str(e)
    return {"boots": 0}, "boot.json unreadable ({}): counting from 0".format(err)


def write(data_dir, s):
    p = _path(data_dir)
    with open(p + ".tmp", "w") as f:
        json.dump(s, f)
    os.rename(p + ".tmp", p)


def begin(data_dir):
    """At boot: (record, safe mode?, problem reading it or None). The boot is counted on flash at once."""
    s, err = read(data_dir)
    safe = s["boots"] >= SAFE_AFTER
    s["boots"] += 1
    try:
        write(data_dir, s)
    except OSError as e:  # a full or read-only flash must not stop the boot
        err = "boot.json not written ({})".format(e)
    return s, safe, err


def healthy(data_dir, boots=0):
    """This boot stayed healthy: the count goes back to ``boots`` (0; safe mode's retry leaves SAFE_AFTER - 1)."""
    s, _ = read(data_dir)
    s["boots"] = boots
    write(data_dir, s)


def failure(data_dir, reason, exc=None, at=None):
    """Why this boot is not healthy (and the exception's traceback), kept for the next boot to show."""
    s, _ = read(data_dir)
    s["reason"] = reason
    s["at"] = at
    if exc is not None:
        buf = io.StringIO()
        sys.print_exception(exc, buf)
        s["trace"] = buf.getvalue()[-_TRACE:]
    else:
        s.pop("trace", None)
    write(data_dir, s)


def guard(self):
    """What the health guard (``guard.py``) found, acted on: healthy for a minute (the count to 0, an update on
    trial confirmed; in safe mode after an hour: one more normal boot), going wrong (the reason and the failing
    service's traceback written for the next boot, before the watchdog fires), or an update on trial not healthy
    by its deadline (rolled back)."""
    d = self.d
    data = d.platform.data_dir
    try:
        if self.deadline is not None and not self.healthy and time.ticks_diff(time.ticks_ms(), self.deadline) > 0:
            _ota("rollback", d, "not healthy within ota.confirm_s ({})".format(self.reason or "not long enough"))
        elif self.reason is None and self.healthy:  # safe mode, healthy for an hour: try a normal boot again
            healthy(data, SAFE_AFTER - 1)
            d.platform.reset()
        elif self.reason is None:
            self.healthy = True
            if not self.safe:
                healthy(data)
                d.log.info("guard", "healthy for {} s: boot counter cleared".format(self.ms[1] // 1000))
            if self.deadline is not None:
                self.deadline = None
                _ota("confirm", d)  # the app (or firmware) update on trial is good
        elif not self.told:
            self.told = True
            f = d.supervisor.failed
            failure(data, self.reason, f[1] if f is not None and self.reason.find(" " + f[0] + " ") > 0 else None,
                    d.platform.epoch_ms())
            d.log.error("guard", "unhealthy: {}".format(self.reason))
    except OSError as e:
        d.log.warning("guard", "boot.json: {}".format(e))


def _ota(fn, *args):
    # ota.<fn>(*args), with ota loaded for the call only (lazy)
    from sensorbox.device import lazy

    try:
        return getattr(lazy.load("sensorbox.device.ota"), fn)(*args)
    finally:
        lazy.unload("sensorbox.device.ota")
