"""Reading the log ring as entries (``GET /api/logs``; ``Log.entries``, a list, for tests): loaded only for the
call.

Read record by record from the ring in place: no copy of all of it (that block may not be there in a busy heap)."""

from sensorbox.device.log import LEVELS


def entries(log, since=0, min_level=0):
    """Whole entries in the ring starting at or after byte offset ``since``, as dicts, one at a time as they are
    asked for (``GET /api/logs`` streams them: one entry's dict in RAM, not all of them; ``Log.entries`` makes
    the list): those logged by the time of the call; an entry the ring overwrites meanwhile ends it."""
    lo = max(log._end - log._size, log._base)
    end = log._end
    if not (since == log._base or lo < since <= end and _at_entry(log, since)):
        since = -1  # not an entry of this boot that the ring still holds: from the oldest one
    start = min(max(since, lo), end)
    pos = start
    # The oldest bytes may be the tail of an entry that was partly overwritten: skip to a record start.
    if start > log._base and start != since:
        while pos < end:
            nl = _nl(log, pos)
            if nl < 0 or not _cont(log, nl):
                pos = nl + 1 if nl >= 0 else end
                break
            pos = nl + 1
    return _each(log, pos, end, min_level)


def _each(log, pos, end, min_level):
    size = log._size
    mv = log._mv
    while pos < end and pos >= log._end - size:  # (not overwritten by entries logged since)
        nl = _nl(log, pos, end)
        while nl >= 0 and _cont(log, nl):
            nl = _nl(log, nl + 1, end)
        if nl < 0:
            nl = end
        a = pos % size
        first = min(nl - pos, size - a)
        rec = bytes(mv[a:a + first])
        if first < nl - pos:
            rec += mv[0:nl - pos - first]
        parts = rec.decode().split(" ", 3)
        rec = None
        if len(parts) == 4:
            level = LEVELS.get(parts[1], 0)
            if level >= min_level:
                yield {"id": pos, "t": int(parts[0]), "level": parts[1], "source": parts[2],
                       "msg": parts[3].replace("\n| ", "\n")}
        pos = nl + 1


def _nl(log, i, end=None):
    # Absolute offset of the first newline at or after absolute offset i (before ``end``: the ring's end), or -1.
    if end is None:
        end = log._end
    size = log._size
    while i < end:
        a = i % size
        stop = min(size, a + end - i)
        k = log._ring.find(b"\n", a, stop)
        if k >= 0:
            return i + k - a
        i += stop - a
    return -1


def _cont(log, nl):
    # Whether the record goes on after the newline at absolute offset nl (the next line starts "| ").
    return nl + 2 < log._end and log._ring[(nl + 1) % log._size] == 0x7C and \
        log._ring[(nl + 2) % log._size] == 0x20


def _at_entry(log, p):
    # True when absolute offset p (inside the ring, past its oldest byte) starts an entry: a newline before it, and
    # no "| " continuation after it.
    r = log._ring
    n = log._size
    return r[(p - 1) % n] == 10 and (p == log._end or r[p % n] != 124 or r[(p + 1) % n] != 32)
