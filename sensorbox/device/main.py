# The device's main.py (the bundle's root; an app update never replaces it): the loader picks the app to run (the
# bundle's own or an update's slot: sensorbox/device/loader.py, which acts when imported and then drops itself and
# its packages, so that every module of the app comes from the chosen bundle), then the app starts.
import sys

__import__("sensorbox.device.loader")
try:
    import sensorbox.device.app

    sensorbox.device.app.main()
except Exception as e:  # an app that crashed at boot or does not even import (an update on trial: rolled back)
    try:
        __import__("sensorbox.device.bootstate").device.bootstate.crashed(e)  # said for the next boot
    finally:
        sys.exit(75)  # a soft reset on a board (main.py again); on the unix port `sensorbox run` starts it again
