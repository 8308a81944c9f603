# The device's main.py (the bundle's root; an app update never replaces it): bootstate.pick, from this bundle,
# chooses the app to run (the bundle's own or an update's slot) and imports it, then the app starts (app.main; a
# crash at import or at boot is said in boot.json, then the device restarts). Nothing more here: this file is
# compiled at every boot and its code stays in RAM while the app runs.
__import__("sensorbox.device.bootstate").device.bootstate.pick()
__import__("sensorbox.device.app").device.app.main()
