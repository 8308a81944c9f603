"""What a boot starts from and what the health guard decides: the boot counter behind safe mode, which app runs
(an update on trial or not), and what the health guard found, acted on (``update``). Loaded only while it runs
(``lazy``): first of all to choose the app (``pick``, from ``main.py``), at boot, when the health guard
(``supervisor.tick``) has something to decide, for ``ota.py``, on a crash, and at the end of a run (``shutdown``). Its keys and names are few and short on purpose: every name a
module spells is interned for good.

Boot counter: ``boot.json`` in the data directory, ``{"count": n, "reason": ..., "error": its traceback, "t":
epoch ms}``: ``count`` counts consecutive boots that did not stay healthy for a minute; each boot adds one before
anything else can fail, a healthy minute sets it to 0. From ``SAFE_AFTER`` on the device boots in safe mode
(network, UI, updates; no sensors, store or analysis), with the last reason and traceback kept for ``/api/status``
and the UI.
An unreadable file counts as no unhealthy boot and is reported, never a reason not to start.

App slots (``ota.py`` writes them; ``pick`` chooses one at boot): ``<data>/app/state.json``, ``{"active": "a" |
"b" | null, "previous": the slot to go back to, "trial": true until the update stayed healthy, "started": its
first boot has begun, "version", "build", "why", "t"}``. An update on trial must stay healthy for a minute within
10 minutes (``ota.confirm``) or it is rolled back (``ota.rollback``); a firmware update through ``esp32.Partition``
follows the same rule. Every write goes through a ``.tmp`` and a rename: a power cut leaves the old or the new file.
"""

import io
import json
import os
import sys
import time

from micropython import const

SAFE_AFTER = const(3)
_TRACE = const(1500)  # characters of traceback kept
_RETRY_MS = const(3600000)  # safe mode tries a normal boot again after an hour
_SLOTS = const("/app/a/lib /app/b/lib")  # the end of sys.path[0] when an update's app runs (pick)


def read(data_dir):
    try:
        with open("{}/boot.json".format(data_dir)) as f:
            s = json.load(f)
        if isinstance(s, dict) and isinstance(s.get("count"), int):
            return s, None
        err = "not a boot record"
    except OSError:
        return {"count": 0}, None
    except ValueError as e:
        err = str(e)
    return {"count": 0}, "boot.json unreadable ({}): counting from 0".format(err)


def _swap_in(path, s):
    with open(path + ".tmp", "w") as f:
        json.dump(s, f)
    os.rename(path + ".tmp", path)


def write(data_dir, s):
    _swap_in("{}/boot.json".format(data_dir), s)


def init(d):
    """At boot, before anything else can fail (``d.log`` is made): the stored data erased if a factory reset asked
    for it, the boot counted on flash, which app runs (``d.app``). ``d.boot``: the record as it was (``count``:
    the unhealthy boots before this one). Returns whether to boot in safe mode."""
    data = d.platform.data_dir
    try:
        os.stat(data + "/erase-data")  # a factory reset asked for the stored data to go too (factory.py)
        from sensorbox.device import lazy

        lazy.call("sensorbox.device.factory", "boot", d)
    except OSError:
        pass
    s, err = read(data)
    if s["count"] or len(s) > 1:  # (else nothing to tell: no RAM for it, not even an attribute's)
        d.boot = dict(s)
    safe = s["count"] >= SAFE_AFTER
    s["count"] += 1
    try:
        write(data, s)
    except OSError as e:  # a full or read-only flash must not stop the boot
        err = "boot.json not written ({})".format(e)
    if err:
        d.log.warning("boot", err)
    if safe:
        d.log.error("boot", "safe mode after {} unhealthy boots; last: {}".format(s["count"] - 1, s.get("reason")))
    if running():  # an app from an update slot (main.py): its own UI and default model
        d.platform.www_dir = sys.path[0][:-3] + "www"
    _app(d)
    return safe


def crashed(e, n=0):
    """The app crashed at boot (``app.main``) or did not import (``pick``, ``n`` 1: the boot ended before ``init``
    counted it): the traceback on the console and, with the reason, in boot.json for the next boot (safe mode
    counts it)."""
    sys.print_exception(e)
    from sensorbox.device import platform

    error(platform.get().data_dir, "crashed: {!r}".format(e), e, None, n)


async def shutdown(d):
    """Stop device ``d`` (``Device.shutdown``): the HTTP server, MQTT (its "offline" first), every service, the
    store (flushed), the log."""
    d.log.info("app", "stopping")
    if d.http is not None:
        d.http.shutdown()  # (nothing to close when it never listened)
    if d.mqtt is not None:
        await d.mqtt.stop()  # retained "offline" before the clean DISCONNECT
    await d.supervisor.stop()
    if d.store is not None:
        d.store.close()
    d.log.flush()


def healthy(data_dir, n=0):
    """This boot stayed healthy: the count goes back to ``n`` (0; safe mode's retry leaves SAFE_AFTER - 1)."""
    s, _ = read(data_dir)
    s["count"] = n
    write(data_dir, s)


def trial(data_dir):
    """An update is installed: its trial boot is a normal one. One sent in safe mode (or in the last unhealthy boot
    before it) is the owner's fix: in safe mode it would never run what it fixes, and be confirmed unseen. The
    count goes to SAFE_AFTER - 1, so if the update does not stay healthy the next boot is safe mode again, on the
    app that was good (``pick`` rolls back). Written before an app's switch: a power cut in between leaves a normal
    boot of the old app, as safe mode's hourly retry does."""
    if read(data_dir)[0]["count"] >= SAFE_AFTER:
        healthy(data_dir, SAFE_AFTER - 1)


def error(data_dir, reason, exc=None, t=None, n=0):
    """Why this boot is not healthy (and the exception's traceback), kept for the next boot to show; ``n`` added to
    the count."""
    s, _ = read(data_dir)
    s["count"] += n
    s["reason"] = reason
    s["t"] = t
    if exc is not None:
        buf = io.StringIO()
        sys.print_exception(exc, buf)
        s["error"] = buf.getvalue()[-_TRACE:]
    else:
        s.pop("error", None)
    write(data_dir, s)


def reason(sup):
    """Why the health guard (``supervisor.tick``) finds this boot not healthy now (None: it does)."""
    s = sup._bad
    if s is None:
        return None
    return "service {} is failing ({})".format(s.name, s.last_error) if s is not True else \
        "a service stopped (no heartbeat, or its keeper ended)"


def update(sup, now):
    """What the health guard (``supervisor.tick``) found, acted on, and when it has something to decide next
    (``sup._next``; None: nothing). Well for a minute in one stretch (``ms[1]``): the count to 0 (not in safe
    mode), an update on trial confirmed; in safe mode, well for an hour: one more normal boot. Going wrong for half
    the watchdog's timeout: the reason and the failing service's traceback written for the next boot, once (the
    watchdog fires at the full timeout). An update on trial not healthy by its deadline: rolled back."""
    d = sup.d
    if sup._wdt is None:  # the first tick: the watchdog starts, fed or not from now on
        make = getattr(d.platform, "watchdog", None)
        sup._wdt = (make and make(sup.ms[0])) or False
    data = d.platform.data_dir
    why = reason(sup)
    el = time.ticks_diff(now, sup._since)
    due = None  # ms from now to the next decision
    dl = sup._deadline
    try:
        if dl is not None and not sup.healthy and time.ticks_diff(now, dl) >= 0:
            _ota(d, "not healthy in time ({})".format(why or "not long enough"))
        elif sup._bad is None and not sup.healthy:
            due = sup.ms[1] - el
            if due <= 0:
                sup.healthy = True
                if not sup.safe_mode:
                    healthy(data)
                    d.log.info("boot", "healthy for a minute: boot counter cleared")
                if dl is not None:
                    sup._deadline = dl = None
                    _ota(d)  # the app (or firmware) update on trial is good
                due = _RETRY_MS - el if sup.safe_mode else None
        elif sup._bad is None and sup.safe_mode:  # healthy in safe mode for an hour: try a normal boot again
            due = _RETRY_MS - el
            if due <= 0:
                healthy(data, SAFE_AFTER - 1)
                d.platform.reset()
        elif sup._bad is not None and not sup._told and not sup.healthy:
            due = sup.ms[0] // 2 - el
            if due <= 0:
                sup._told = True
                due = None
                f = sup._fail  # (its traceback when the failing service is the one that raised last)
                error(data, why, f[1] if f and sup._bad is not True and sup._bad.name == f[0] else None,
                      d.platform.epoch_ms())
                d.log.error("boot", "unhealthy: {}".format(why))
    except OSError as e:
        d.log.warning("boot", "boot.json: {}".format(e))
    if dl is not None and not sup.healthy:  # (the deadline too, whichever comes first)
        left = time.ticks_diff(dl, now)
        due = left if due is None or left < due else due
    sup._next = None if due is None else time.ticks_add(now, max(due, 0))


def _ota(d, why=None):
    # the update on trial confirmed (``why`` None) or rolled back: ota.py's, loaded only then
    from sensorbox.device import lazy

    try:
        o = lazy.load("sensorbox.device.ota")
        if why:
            o.rollback(d, why)
        else:
            o.confirm(d)
    finally:
        lazy.unload("sensorbox.device.ota")


# ---- the app's slots (ota.py writes them, pick chooses one at boot) ----

def pick():
    """``main.py``, first of all, with this module from the bundle deployed over USB (an update never replaces
    ``main.py``, and this runs before any of an update's code): which app to start, the bundle's own or an update
    in slot ``<data>/app/a`` or ``b``. An update on trial gets one boot: if the device boots again before the app
    confirmed it (a crash, a reset, a power cut, the watchdog), it goes back to ``previous``. A slot runs only if
    its ``ok`` file (written after every file was verified) is there. Then this module and the packages it came in
    leave ``sys.modules`` and the app is imported, from the chosen bundle alone (an app that does not import:
    said in boot.json, then a restart). Imports nothing from sensorbox before that."""
    try:
        data = os.getenv("SENSORBOX_DATA") or "./var"  # the unix port
    except AttributeError:  # a board: no environment
        data = "/data"
    s = read_state(data)
    slot = s.get("active")
    if slot in ("a", "b") and s.get("trial"):
        if s.get("started"):  # its one boot went by without a confirmation: back to the app that was good
            s["active"] = s.get("previous")
            s["trial"] = s["started"] = False
            s["why"] = "rolled back from update {} (slot {}): it did not stay healthy on its first boot".format(
                s.get("version"), slot)
            slot = s["active"]
        else:
            s["started"] = True
        write_state(data, s)
        print("loader: {}".format(s["why"] if not s["trial"] else "update {} on trial".format(s.get("version"))))
    if slot in ("a", "b"):
        try:
            os.stat("{}/app/{}/ok".format(data, slot))
            sys.path.insert(0, "{}/app/{}/lib".format(data, slot))
        except OSError:
            print("loader: slot {} is incomplete; starting the bundle's own app".format(slot))
    for m in ("sensorbox.device.bootstate", "sensorbox.device", "sensorbox"):  # the app: from one bundle
        sys.modules.pop(m, None)
    try:
        __import__("sensorbox.device.app")
    except Exception as e:  # an app that does not import (an update on trial goes back at the next boot)
        try:
            crashed(e, 1)  # said in boot.json, and counted (init never ran)
        finally:
            sys.exit(75)  # a soft reset on a board (main.py again); on the unix port `sensorbox run` starts it again


def read_state(data):
    try:
        with open(data + "/app/state.json") as f:
            s = json.load(f)
        if isinstance(s, dict):
            return s
    except (OSError, ValueError):
        pass
    return {"active": None}


def write_state(data, s):
    _swap_in(data + "/app/state.json", s)


def running():
    """The slot whose app runs ("a", "b") or None (the bundle's own, from the USB deploy)."""
    p = sys.path[0] if sys.path else ""
    k = _SLOTS.find(p[-10:]) if len(p) > 10 else -1
    return p[-5] if k == 0 or k == 11 else None


def update_key(data):
    """The device's update key (32 bytes, ``update.key`` in the data directory), or None."""
    import binascii

    try:
        with open(data + "/update.key") as f:
            k = binascii.unhexlify(f.read().strip())
        return k if len(k) == 32 else None
    except (OSError, ValueError):
        return None


def _app(d):
    # ``d.app`` (``/api/status`` -> ``app``: which app runs and why, kept in RAM and updated by ota.confirm); "trial":
    # an update (of the app or the firmware) is on trial. None for the bundle's own app on a device that never had
    # an update nor a key (status says so then: no RAM for it)
    data = d.platform.data_dir
    st = read_state(data)
    slot = running()
    ver = build = None
    if slot is not None:
        try:
            with open("{}/app/{}/ok".format(data, slot)) as f:
                ok = json.load(f)
            ver, build = ok.get("version"), ok.get("build")
        except (OSError, ValueError):
            pass
    trial = bool(st.get("trial")) and st.get("active") == slot
    a = {"slot": slot, "version": ver or __import__("sensorbox").__version__, "build": build,
         "trial": trial or bool((st.get("firmware") or {}).get("pending")), "why": st.get("why"),
         "key": update_key(data) is not None}
    fw = getattr(d.platform, "firmware", None)  # (a board with firmware updates: esp32)
    if fw is not None:
        a["firmware"] = {"running": fw(), "update": st.get("firmware")}
    if slot or a["why"] or a["key"] or fw is not None:
        d.app = a
