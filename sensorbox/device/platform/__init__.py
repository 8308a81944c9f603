"""What differs between boards, behind one small interface.

``get()`` returns the platform object for this interpreter: ``unix.Platform`` on the MicroPython unix port
(the simulated device), ``esp32.Platform`` on an ESP32. The app only uses these methods:

- ``name``: short platform name; ``data_dir``: where the device keeps its files.
- ``unique_id(log)``: a stable hex id of this device (``log``: where to report a stored id that was unreadable).
- ``epoch_ms()``: wall-clock time in ms since 1970 (int), never going backwards during a run.
- ``clock()``: that clock (``clock.Clock``): ``known``, ``ahead_ms`` (``store/recover.floor``: never before what
  was stored).
- ``flash_stats()``: (total_bytes, free_bytes) of the file system holding ``data_dir``.
- ``http_port(configured)``: the port to serve on.
- ``sensor(name, config, log)``: the driver for sensor ``name`` ("accel", "mic"), or None if absent.
- ``start_network(device)``: bring the network up (a coroutine: starts what keeps it up, e.g. a service).
- ``watchdog(timeout_ms)``: start the board's watchdog (``machine.WDT``'s interface: ``feed()``), or None.
- ``reset()``: restart the device.
"""

import sys

_platform = None


def get():
    global _platform
    if _platform is None:
        if sys.platform == "esp32":  # pragma: no cover - needs the board
            from sensorbox.device.platform import esp32 as impl
        else:
            from sensorbox.device.platform import unix as impl
        _platform = impl.Platform()
    return _platform
