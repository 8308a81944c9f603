"""The device application: runs on MicroPython (ESP32 and the unix port). Entry point: ``sensorbox.device.app``."""
