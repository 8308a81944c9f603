"""The loader (run by ``main.py`` before anything else, from the bundle deployed over USB; an app update never
replaces it): which app to start, the bundle's own or an update in one of two slots, <data>/app/a and
<data>/app/b (``ota.py`` writes them).

<data>/app/state.json, replaced only by a rename, says which: {"active": "a"|"b"|null, "previous": the slot (or
null: the bundle's app) to go back to, "trial": true while an update has not yet stayed healthy, "started": its
first boot has begun}. An update on trial gets one boot: if the device boots again before the app confirmed it (a
crash, a reset, a power cut, the watchdog), it goes back to "previous". A slot runs only if its "ok" file (written
after every file was verified) is there. It does its work when imported (the chosen slot's lib first on ``sys.path``;
nothing for the bundle's own app), imports nothing from sensorbox, and then drops itself and the packages it came in
from ``sys.modules`` before main.py imports the app: the app's modules all come from one bundle, and this code from
no RAM. (``boot.warm`` does not load it again: its names were interned when main.py ran it.)
"""


def _pick():
    import json
    import os

    try:
        data = os.getenv("SENSORBOX_DATA") or "./var"  # the unix port
    except AttributeError:  # a board: no environment
        data = "/data"
    root = data + "/app/"
    try:
        with open(data + "/app/state.json") as f:
            s = json.load(f)
        slot = s.get("active")
    except (OSError, ValueError, AttributeError):
        return None
    if slot not in ("a", "b"):
        return None
    if s.get("trial"):
        if s.get("started"):  # its one boot went by without a confirmation: back to the app that was good
            s["active"] = s.get("previous")
            s["trial"] = s["started"] = False
            s["why"] = "rolled back from update {} (slot {}): it did not stay healthy on its first boot".format(
                s.get("version"), slot)
            slot = s["active"]
        else:
            s["started"] = True
        with open(data + "/app/state.json.tmp", "w") as f:
            json.dump(s, f)
        os.rename(data + "/app/state.json.tmp", data + "/app/state.json")
        print("loader: {}".format(s.get("why") if not s.get("trial") else "update {} on trial".format(
            s.get("version"))))
    if slot not in ("a", "b"):
        return None
    try:
        os.stat("{}{}/ok".format(root, slot))
    except OSError:
        print("loader: slot {} is incomplete; starting the bundle's own app".format(slot))
        return None
    return root + slot


_slot = _pick()
_sys = __import__("sys")
if _slot:
    _sys.path.insert(0, _slot + "/lib")
for _m in ("sensorbox.device.loader", "sensorbox.device", "sensorbox"):  # then gone: the app comes from one bundle
    _sys.modules.pop(_m, None)
