"""The device log: a bounded ring of recent entries in RAM plus a rotated log file on flash.

``log.info("store", "opened")`` costs a tuple and a ring slot; nothing touches flash. The supervisor's
``flush`` service writes pending entries to ``log.txt`` every few seconds in one open/write/close (a littlefs
open+write+close takes tens of ms on an ESP32, too much per entry). When the file passes ``file_kb`` it becomes
``log.1.txt`` (the previous one is dropped), so the log never takes more than twice ``file_kb`` of flash.
"""

import io
import os
import sys

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_NAMES = {DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error"}


class Log:
    def __init__(self, clock, path=None, ring_size=64, file_kb=32, echo=True):
        self._clock = clock
        self.path = path
        self.ring_size = ring_size
        self.file_bytes = file_kb * 1024
        self.level = INFO
        self.echo = echo
        self._ring = []
        self._seq = 0  # number of entries ever logged; entry i has id i
        self._flushed = 0  # entries up to this id are on flash
        self.dropped = 0  # entries that left the ring before reaching flash
        self.write_errors = 0

    def log(self, level, source, message):
        if level < self.level:
            return
        entry = (self._seq, self._clock(), level, source, message)
        self._seq += 1
        ring = self._ring
        ring.append(entry)
        if len(ring) > self.ring_size:
            old = ring.pop(0)
            if old[0] >= self._flushed and self.path:
                self.dropped += 1
                self._flushed = old[0] + 1
        if self.echo:
            print("{} {} {}".format(_NAMES.get(level, level), source, message))

    def debug(self, source, message):
        self.log(DEBUG, source, message)

    def info(self, source, message):
        self.log(INFO, source, message)

    def warning(self, source, message):
        self.log(WARNING, source, message)

    def error(self, source, message):
        self.log(ERROR, source, message)

    def exception(self, source, message, exc):
        buf = io.StringIO()
        sys.print_exception(exc, buf)
        self.log(ERROR, source, "{}\n{}".format(message, buf.getvalue().rstrip()))

    def set_level(self, name):
        self.level = LEVELS[name]

    def entries(self, since=0, min_level=0):
        """Entries in the ring with id >= since, as dicts (for the API)."""
        out = []
        for seq, t, level, source, message in self._ring:
            if seq >= since and level >= min_level:
                out.append({"id": seq, "t": t, "level": _NAMES.get(level, level), "source": source, "msg": message})
        return out

    def pending(self):
        return self._seq - self._flushed

    def flush(self):
        """Append entries not yet on flash to the log file, rotating it when full. Returns entries written."""
        if not self.path or self._flushed >= self._seq:
            return 0
        n = 0
        try:
            try:
                size = os.stat(self.path)[6]
            except OSError:
                size = 0
            if size >= self.file_bytes:
                try:
                    os.rename(self.path, self.path[:-4] + ".1.txt")
                except OSError:
                    pass
            with open(self.path, "a") as f:
                for seq, t, level, source, message in self._ring:
                    if seq >= self._flushed:
                        f.write("{} {} {} {}\n".format(t, _NAMES.get(level, level), source, message))
                        n += 1
            self._flushed = self._seq
        except OSError as e:
            # A full or failing flash must not take the device down: keep the entries in RAM and say so.
            self.write_errors += 1
            if self.echo:
                print("error log cannot write {}: {}".format(self.path, e))
        return n
