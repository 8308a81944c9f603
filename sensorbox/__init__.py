"""sensorbox: local-first sensor devices. Subpackages: device (MicroPython), shared (everywhere), host (CPython)."""

__version__ = "0.1.0"
