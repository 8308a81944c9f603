"""The simulated ESP32's start (tests/host/fielddev.py runs ``micropython fieldmain.py <bundle>/main.py``): the
device's platform is made the ESP32 platform over the board doubles (``fieldplat.Platform``; the doubles' bootloader
runs as they are imported), then the bundle's own ``main.py`` runs, as a board runs it. (The platform's modules are
then the bundle's even when an update's slot runs: the app's own come from the slot.)"""

import sys

import fieldplat

from sensorbox.device import platform

platform._platform = fieldplat.Platform()
with open(sys.argv[1]) as f:
    exec(f.read())
