"""Factory reset (loaded only for it): ``POST /api/reset`` (admin, confirmed with the device id) or the board's
button (``board.reset_pin``, to GND) held for ``HOLD_MS`` while the device boots.

It deletes the credentials, the configuration and the tokens (``WIPED``: Wi-Fi networks, admin password,
sessions and API tokens, the update key, the boot counter, the current label) and keeps the stored data, uploaded
models and the log, unless ``erase_data`` (the store, models and log too). Kept in any case: the device id, the
set-up access point's password (``ap.json``, often printed on a label) and the app it runs. The next boot is a
first boot: a new admin password on the console and, on a board, the set-up access point.
"""

import os
import time

from micropython import const

HOLD_MS = const(5000)
WIPED = ("wifi.json", "config.json", "auth.json", "tokens.json", "sessions.json", "ota.key", "boot.json",
         "recording.json")
DATA = ("store", "models", "log.txt", "log.1.txt")
ERASE = "erase-data"  # a marker: the next boot erases DATA first (boot.py)


def rmtree(path):
    """Delete a file or a directory with everything in it; 1 if there was one, else 0."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    if st[0] & 0x4000:
        for e in list(os.ilistdir(path)):
            rmtree(path + "/" + e[0])
        os.rmdir(path)
    else:
        os.remove(path)
    return 1


def wipe(data_dir, erase_data=False):
    """Delete what a factory reset deletes (and the ``.bad``/``.tmp`` copies); the names deleted."""
    out = []
    for name in WIPED + (DATA if erase_data else ()):
        for suffix in ("", ".bad", ".tmp"):
            if rmtree(data_dir + "/" + name + suffix):
                out.append(name + suffix)
    return out


def erase_later(data_dir):
    """The stored data goes at the next boot (``ERASE`` marker: nothing has the store's files open then)."""
    with open(data_dir + "/" + ERASE, "w") as f:
        f.write("1")


def button_held(pin_no, machine, hold_ms=HOLD_MS, log=None):
    """True when the button on GPIO ``pin_no`` (pulled up, pressed = low) is held for ``hold_ms`` from now."""
    pin = machine.Pin(pin_no, machine.Pin.IN, machine.Pin.PULL_UP)
    if pin.value():
        return False
    if log is not None:
        log.warning("boot", "reset button held: keep holding for {} s to reset to factory settings".format(
            hold_ms // 1000))
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < hold_ms:
        if pin.value():
            return False
        time.sleep_ms(50)  # (at boot, before the event loop: nothing else to wait for)
    return True
