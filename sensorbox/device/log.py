"""The device log: a fixed byte ring of recent entries in RAM plus a rotated log file on flash.

An entry is one text record ``"<epoch_ms> <level> <source> <message>\\n"`` (continuation lines of a message, such
as a traceback, start with ``"| "``). Records go into a ``bytearray`` ring of ``ring_bytes`` allocated once, so
logging makes no long-lived objects and does not fragment the heap. An entry's id is the byte offset at which it
starts in the stream of everything ever logged; ``entries(since=id)`` reads from there.

Nothing touches flash when logging: the housekeeping service calls ``flush`` every few seconds, which appends
what is new to ``log.txt`` in one open/write/close (a littlefs open+write+close takes tens of ms on an ESP32,
too much per entry). When the file passes ``file_bytes`` it becomes ``log.1.txt`` (the previous one is dropped),
so the log never takes more than twice that. Bytes that leave the ring before reaching flash are counted in
``dropped`` (bytes), never silently.
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
    def __init__(self, clock, path=None, ring_bytes=2048, file_kb=32, echo=True):
        self._clock = clock
        self.path = path
        self.file_bytes = file_kb * 1024
        self.level = INFO
        self.echo = echo
        self._ring = bytearray(ring_bytes)
        self._mv = memoryview(self._ring)
        self._size = ring_bytes
        self._end = 0  # bytes ever logged
        self._flushed = 0  # bytes up to here are on flash (or counted as dropped)
        self.dropped = 0  # bytes that left the ring before reaching flash
        self.write_errors = 0

    def log(self, level, source, message):
        if level < self.level:
            return
        name = _NAMES.get(level, "info")
        if self.echo:
            print(name, source, message)
        rec = "{} {} {} {}\n".format(self._clock(), name, source, message.replace("\n", "\n| ")).encode()
        if len(rec) > self._size // 2:
            rec = rec[: self._size // 2 - 5] + b"...\n"
        self._put(rec)

    def _put(self, rec):
        n = len(rec)
        pos = self._end % self._size
        first = min(n, self._size - pos)
        self._mv[pos:pos + first] = rec[:first]
        if first < n:
            self._mv[0:n - first] = rec[first:]
        self._end += n
        if self.path and self._end - self._flushed > self._size:
            self.dropped += self._end - self._size - self._flushed
            self._flushed = self._end - self._size

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

    def _nl(self, i):
        """Absolute offset of the first newline at or after absolute offset ``i``, or -1."""
        end = self._end
        size = self._size
        while i < end:
            a = i % size
            stop = min(size, a + end - i)
            k = self._ring.find(b"\n", a, stop)
            if k >= 0:
                return i + k - a
            i += stop - a
        return -1

    def _cont(self, nl):
        # whether the record goes on after the newline at absolute offset nl (the next line starts "| ")
        return nl + 2 < self._end and self._ring[(nl + 1) % self._size] == 0x7C and \
            self._ring[(nl + 2) % self._size] == 0x20

    def entries(self, since=0, min_level=0):
        """Whole entries in the ring starting at or after byte offset ``since``, as dicts (for the API). Read
        record by record from the ring (no copy of all of it: that block may not be there in a busy heap)."""
        start = max(since, self._end - self._size, 0)
        pos = start
        end = self._end
        # The oldest bytes may be the tail of an entry that was partly overwritten: skip to a record start.
        if start > 0 and start != since:
            while pos < end:
                nl = self._nl(pos)
                if nl < 0 or not self._cont(nl):
                    pos = nl + 1 if nl >= 0 else end
                    break
                pos = nl + 1
        out = []
        size = self._size
        while pos < end:
            nl = self._nl(pos)
            while nl >= 0 and self._cont(nl):
                nl = self._nl(nl + 1)
            if nl < 0:
                nl = end
            a = pos % size
            first = min(nl - pos, size - a)
            rec = bytes(self._mv[a:a + first])
            if first < nl - pos:
                rec += self._mv[0:nl - pos - first]
            parts = rec.decode().split(" ", 3)
            rec = None
            if len(parts) == 4:
                level = LEVELS.get(parts[1], 0)
                if level >= min_level:
                    out.append({"id": pos, "t": int(parts[0]), "level": parts[1], "source": parts[2],
                                "msg": parts[3].replace("\n| ", "\n")})
            pos = nl + 1
        return out

    def pending(self):
        return self._end - self._flushed

    def flush(self):
        """Append what is not yet on flash to the log file, rotating it when full. Returns bytes written."""
        if not self.path or self._flushed >= self._end:
            return 0
        # Written straight from the ring (one or two slices of it: no copy, so no block as big as the backlog
        # is needed, which a fragmented heap may not have; a failed flush once took housekeeping down).
        start = max(self._flushed, self._end - self._size, 0)
        n = self._end - start
        a = start % self._size
        first = min(n, self._size - a)
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
            with open(self.path, "ab") as f:
                f.write(self._mv[a:a + first])
                if first < n:
                    f.write(self._mv[0:n - first])
            self._flushed = start + n
        except OSError as e:
            # A full or failing flash must not take the device down: the entries stay in RAM; say so once.
            self.write_errors += 1
            if self.echo and self.write_errors == 1:
                print("error log cannot write {}: {}".format(self.path, e))
            return 0
        return n
