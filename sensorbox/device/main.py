# The device's main.py (the bundle's root; an app update never replaces it): the loader picks the app to run (the
# bundle's own or an update's slot: sensorbox/device/loader.py), then the app starts. The loader and its packages
# are dropped first, so that every module of the app comes from the chosen bundle.
import sys

import sensorbox.device.loader

sensorbox.device.loader.pick()
for _m in ("sensorbox.device.loader", "sensorbox.device", "sensorbox"):
    sys.modules.pop(_m, None)
del _m
try:
    import sensorbox.device.app
except Exception as e:  # an app that does not even import: a reset (an update on trial is then rolled back)
    sys.print_exception(e)
    import machine

    if hasattr(machine, "reset"):
        machine.reset()
    sys.exit(75)  # the unix port: `sensorbox run` starts it again
sensorbox.device.app.main()
