"""The simulated board's hardware watchdog, for ``sensorbox run``.

On a board, ``machine.WDT`` resets the chip when the software stops feeding it. On the unix port the device's
``WDT`` (``sensorbox/device/platform/unix.py``) writes a count and its timeout to ``<data>/watchdog`` at every
feed; ``watch`` checks that file from outside the device's process and, once the device has armed it (its first
feed), ends the process with SIGALRM when the count has not changed for the timeout. ``sensorbox run`` then
starts the device again, as a board boots after a reset.
"""

import os
import signal
import threading
import time


def watch(proc, data_dir, period_s=0.5):
    """Watch the device process ``proc`` (a ``subprocess.Popen``) whose data directory is ``data_dir``; returns
    a function that stops watching. A stale file from an earlier run is removed first: only this run's feeds arm
    it."""
    path = os.path.join(data_dir, "watchdog")
    try:
        os.remove(path)
    except OSError:
        pass
    stop = threading.Event()

    def run():
        last, since = None, time.monotonic()
        while not stop.wait(period_s) and proc.poll() is None:
            try:
                with open(path) as f:
                    count, timeout_ms = f.read().split()
                timeout_s = int(timeout_ms) / 1000
            except (OSError, ValueError):  # not armed yet (or written this very moment)
                continue
            now = time.monotonic()
            if count != last:
                last, since = count, now
            elif now - since > timeout_s:
                print("sensorbox: watchdog: not fed for {} ms; resetting the device".format(timeout_ms), flush=True)
                proc.send_signal(signal.SIGALRM)
                return

    threading.Thread(target=run, daemon=True).start()
    return stop.set
