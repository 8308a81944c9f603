"""Factory reset (loaded only for it): ``POST /api/reset`` (admin, confirmed with the device id) or the board's
button (``board.reset_pin``, to GND) held for 5 s while the device boots.

It deletes the credentials, the configuration and the tokens (``_WIPED``: Wi-Fi networks, admin password,
sessions and API tokens, the update key, the boot counter, the current label) and keeps the stored data, uploaded
models and the log, unless ``erase_data`` (the store, models and log too). Kept in any case: the device id, the
set-up access point's password (``ap.json``, often printed on a label) and the app it runs. The next boot is a
first boot: a new admin password on the console and, on a board, the set-up access point.
"""

import os
import time

from micropython import const

_HOLD_MS = const(5000)
_WIPED = ("wifi.json", "config.json", "auth.json", "tokens.json", "sessions.json", "update.key", "boot.json",
         "recording.json")
_STORED = ("store", "models", "log.txt", "log.1.txt")
_ERASE = "erase-data"  # a marker: the next boot erases the data first (boot.py)


def wipe(data_dir, erase_data=False, later=False):
    """Delete what a factory reset deletes (and the ``.bad``/``.tmp`` copies); the names deleted. ``later``: the
    stored data goes at the next boot (a marker: nothing has the store's files open then)."""
    if later and erase_data:
        with open(data_dir + "/" + _ERASE, "w") as f:
            f.write("1")
    from sensorbox.device.files import rmtree

    out = []
    for name in _WIPED + (_STORED if erase_data and not later else ()):
        for suffix in ("", ".bad", ".tmp"):
            p = data_dir + "/" + name + suffix
            try:
                os.stat(p)
            except OSError:
                continue
            rmtree(p)
            out.append(name + suffix)
    return out


def boot(d):
    """At boot: the stored data erased if a factory reset over HTTP asked for it (before anything opens it:
    ``bootstate.init`` calls this first); once the config is read (``boot.py``), the factory reset when the button on
    ``board.reset_pin`` is held for 5 s. Returns True when that was done (the config is then read again)."""
    data = d.platform.data_dir
    try:
        os.stat(data + "/" + _ERASE)
        wipe(data, True)
        os.remove(data + "/" + _ERASE)
    except OSError:
        pass
    cfg = getattr(d, "config", None)
    if cfg is None:
        return False
    try:
        import machine

        held = _held(cfg.get("board.reset_pin"), machine, d.log)
    except (ImportError, AttributeError):  # no GPIO on this port (unix): the pin means nothing here
        return False
    except ValueError as e:  # no such GPIO on this board: reported, the boot goes on
        d.log.warning("boot", "board.reset_pin: {}".format(e))
        return False
    if not held:
        return False
    d.log.warning("boot", "factory reset by the button: deleted {}".format(", ".join(wipe(data))))
    return True


def _held(gpio, machine, log):
    """True when the button on GPIO ``gpio`` (pulled up, pressed = low) is held for 5 s from now."""
    pin = machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_UP)
    if pin.value():
        return False
    log.warning("boot", "reset button held: keep holding for {} s to reset to factory settings".format(
        _HOLD_MS // 1000))
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < _HOLD_MS:
        if pin.value():
            return False
        time.sleep_ms(50)  # (at boot, before the event loop: nothing else to wait for)
    return True


def handle(device, req):
    """POST /api/reset (admin: device_api checked it): ``{"confirm": <device id>, "erase_data": false}``; then a
    restart."""
    from sensorbox.device.http.server import BadRequest, read_json
    from sensorbox.device.http.admin import restart

    body = read_json(req)
    if not isinstance(body, dict) or body.get("confirm") != device.device_id:
        raise BadRequest("confirm: this device's id ({}) to confirm a factory reset".format(device.device_id),
                         "confirm")
    erase = body.get("erase_data", False)
    if not isinstance(erase, bool):
        raise BadRequest("erase_data: true or false", "erase_data")
    gone = wipe(device.platform.data_dir, erase, later=True)
    device.log.warning("app", "factory reset over HTTP: deleted {}{}".format(
        ", ".join(gone), "; the stored data goes at the restart" if erase else ""))
    res = restart(device)
    res["deleted"] = gone
    res["erase_data"] = erase
    return res
