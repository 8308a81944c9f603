"""The device log: a fixed byte ring of recent entries in RAM plus a rotated log file on flash.

An entry is one text record ``"<epoch_ms> <level> <source> <message>\\n"`` (continuation lines of a message, such
as a traceback, start with ``"| "``). Records go into a ``bytearray`` ring of ``ring_bytes`` allocated once, so
logging makes no long-lived objects and does not fragment the heap. An entry's id is the byte offset at which it
starts in the stream of everything logged since boot, counted from a random base (below 2**29, so ids stay small
ints on a 32-bit board), so that ids of different boots do not meet; ``entries(since=id)`` reads from there. A
``since`` that is not the start of an entry still in the ring (from an earlier boot, say, as the UI sends after
a restart) reads from the oldest entry in the ring instead.

Nothing touches flash when logging: the housekeeping service calls ``flush`` every few seconds, which appends
what is new to ``log.txt`` in one open/write/close (a littlefs open+write+close takes tens of ms on an ESP32,
too much per entry). When the file passes ``file_bytes`` it becomes ``log.1.txt`` (the previous one is dropped),
so the log never takes more than twice that. Bytes that leave the ring before reaching flash are counted in
``dropped`` (bytes), never silently.

Also here (every service gets it with the log; a module of its own took a 4 KB flash block for ~400 bytes):
``Bus``, the in-process result bus: analysis services publish, the store and live readers subscribe.

``bus.publish(topic, t_ms, value)`` calls every subscriber of ``topic`` synchronously, in subscription order.
Topics are resource names ("features", "predictions", "events", "soundlevel", ...). A value is whatever the
topic's producer documents (an int16 array, a tuple, a small dict for events); subscribers must copy what they
keep, must not block and must not raise (an exception is logged and the other subscribers still run).
The store subscribes first, so what a reader sees later has already been handed to the store.
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
_READ = "sensorbox.device.log_read"


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
        r = os.urandom(3)
        self._base = ((r[0] << 16) | (r[1] << 8) | r[2]) << 5  # where this boot's ids start
        self._end = self._base  # bytes ever logged, + _base
        self._flushed = self._base  # bytes up to here are on flash (or counted as dropped)
        self.dropped = 0  # bytes that left the ring before reaching flash
        self.write_errors = 0
        self.files = []  # persisted files found unreadable and set aside (device/files.py): /api/status -> files

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

    def entries(self, since=0, min_level=0):
        """Whole entries in the ring starting at or after byte offset ``since``, as dicts (for the API; read in
        place from the ring by ``log_read``, loaded for the call)."""
        from sensorbox.device import lazy

        return list(lazy.call(_READ, "entries", self, since, min_level))

    def end(self):
        """The id the next entry will get: ``entries(since=end())`` later gives only what is new."""
        return self._end

    def pending(self):
        return self._end - self._flushed

    def _not_a_file(self):
        """A directory where log.txt or log.1.txt belongs (never written to again otherwise): set it aside."""
        for p in (self.path, self.path[:-4] + ".1.txt"):
            try:
                if os.stat(p)[0] & 0x4000:
                    from sensorbox.device import lazy

                    lazy.call("sensorbox.device.files", "aside", p, self, "a directory where a log file belongs")
            except OSError:
                pass

    def flush(self):
        """Append what is not yet on flash to the log file, rotating it when full. Returns bytes written."""
        if not self.path or self._flushed >= self._end:
            return 0
        # Written straight from the ring (one or two slices of it: no copy, so no block as big as the backlog
        # is needed, which a fragmented heap may not have; a failed flush once took housekeeping down).
        start = max(self._flushed, self._end - self._size)
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
                    self._not_a_file()
            with open(self.path, "ab") as f:
                f.write(self._mv[a:a + first])
                if first < n:
                    f.write(self._mv[0:n - first])
            self._flushed = start + n
        except OSError as e:
            # A full or failing flash must not take the device down: the entries stay in RAM; say so once.
            self._not_a_file()
            self.write_errors += 1
            if self.echo and self.write_errors == 1:
                print("error log cannot write {}: {}".format(self.path, e))
            return 0
        return n


class Bus:
    def __init__(self, log):
        self.log = log
        self._subs = {}  # topic -> list of callables
        self.published = 0

    def subscribe(self, topic, fn):
        self._subs.setdefault(topic, []).append(fn)

    def unsubscribe(self, topic, fn):
        subs = self._subs.get(topic)
        if subs and fn in subs:
            subs.remove(fn)

    def publish(self, topic, t_ms, value):
        self.published += 1
        subs = self._subs.get(topic)
        if not subs:
            return
        for fn in subs:
            try:
                fn(topic, t_ms, value)
            except Exception as e:
                self.log.exception("bus", "subscriber of {} failed".format(topic), e)
