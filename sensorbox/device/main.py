# The device's main.py (the bundle's root; an app update never replaces it): the loader picks the app to run (the
# bundle's own or an update's slot: sensorbox/device/loader.py, which acts when imported and then drops itself and
# its packages, so that every module of the app comes from the chosen bundle), then the app starts.
import sys

__import__("sensorbox.device.loader")
try:
    import sensorbox.device.app
except Exception as e:  # an app that does not even import: a reset (an update on trial is then rolled back)
    sys.print_exception(e)
    import machine

    if hasattr(machine, "reset"):
        machine.reset()
    sys.exit(75)  # the unix port: `sensorbox run` starts it again
sensorbox.device.app.main()
