# The device's main.py: MicroPython runs it at boot (from the bundle's root).
import sensorbox.device.app

sensorbox.device.app.main()
