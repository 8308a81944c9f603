# The device's main.py (the bundle's root; an app update never replaces it): picks the app to run, then starts it.
#
# The app is the bundle this file came with, or an update in one of two slots, <data>/app/a and <data>/app/b
# (sensorbox.device.ota writes them). <data>/app/state.json, replaced only by a rename, says which:
# {"active": "a"|"b"|null, "good": the slot (or null: this bundle) to go back to, "trial": true while an update
# has not yet stayed healthy, "tried": its first boot has begun}. An update on trial gets one boot: if the device
# boots again before the app confirmed it (a crash, a reset, a power cut, the watchdog), it goes back to "good".
# A slot runs only if its "ok" file (written after every file was verified) is there. Nothing here imports from
# sensorbox before the slot's lib is first on the path: the app's modules all come from one bundle.
import sys


def _pick():
    import json
    import os

    try:
        data = os.getenv("SENSORBOX_DATA") or "./var"  # the unix port
    except AttributeError:  # a board: no environment
        data = "/data"
    root = data + "/app/"
    try:
        with open(root + "state.json") as f:
            s = json.load(f)
        slot = s.get("active")
    except (OSError, ValueError, AttributeError):
        return None
    if slot not in ("a", "b"):
        return None
    if s.get("trial"):
        if s.get("tried"):  # its one boot went by without a confirmation: back to the app that was good
            s["active"] = s.get("good")
            s["trial"] = s["tried"] = False
            s["why"] = "rolled back from update {} (slot {}): it did not stay healthy on its first boot".format(
                s.get("version"), slot)
            slot = s["active"]
        else:
            s["tried"] = True
        with open(root + "state.json.tmp", "w") as f:
            json.dump(s, f)
        os.rename(root + "state.json.tmp", root + "state.json")
        print("loader:", s.get("why") if not s.get("trial") else "update {} on trial".format(s.get("version")))
    if slot not in ("a", "b"):
        return None
    try:
        os.stat(root + slot + "/ok")
    except OSError:
        print("loader: slot {} is incomplete; starting the bundle's own app".format(slot))
        return None
    return root + slot


_slot = _pick()
if _slot:
    sys.path.insert(0, _slot + "/lib")
del _pick, _slot
try:
    import sensorbox.device.app
except Exception as e:  # an app that does not even import: a reset (an update on trial is then rolled back)
    sys.print_exception(e)
    import machine

    if hasattr(machine, "reset"):
        machine.reset()
    sys.exit(75)  # the unix port: `sensorbox run` starts it again
sensorbox.device.app.main()
