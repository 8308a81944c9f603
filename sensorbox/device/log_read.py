"""Reading the log ring as entries (``Log.entries``, for ``GET /api/logs`` and tests): loaded only for the call."""

from sensorbox.device.log import LEVELS


def entries(log, since=0, min_level=0):
    """Whole entries in the ring starting at or after byte offset ``since``, as dicts (for the API)."""
    lo = max(log._end - log._size, log._base)
    if not (since == log._base or lo < since <= log._end and _at_entry(log, since)):
        since = -1  # not an entry of this boot that the ring still holds: from the oldest one
    start, raw = log._bytes(since)
    out = []
    pos = 0
    # The oldest bytes may be the tail of an entry that was partly overwritten: skip to a record start.
    if start > log._base and start != since:
        while pos < len(raw):
            nl = raw.find(b"\n", pos)
            if nl < 0 or raw[nl + 1:nl + 3] != b"| ":
                pos = nl + 1 if nl >= 0 else len(raw)
                break
            pos = nl + 1
    while pos < len(raw):
        end = pos
        while True:
            nl = raw.find(b"\n", end)
            if nl < 0:
                nl = len(raw)
                break
            if raw[nl + 1:nl + 3] != b"| ":
                break
            end = nl + 1
        text = bytes(raw[pos:nl]).decode()
        parts = text.split(" ", 3)
        if len(parts) == 4:
            level = LEVELS.get(parts[1], 0)
            if level >= min_level:
                out.append({"id": start + pos, "t": int(parts[0]), "level": parts[1], "source": parts[2],
                            "msg": parts[3].replace("\n| ", "\n")})
        pos = nl + 1
    return out


def _at_entry(log, p):
    # True when absolute offset p (inside the ring, past its oldest byte) starts an entry: a newline before it, and
    # no "| " continuation after it.
    r = log._ring
    n = log._size
    return r[(p - 1) % n] == 10 and (p == log._end or r[p % n] != 124 or r[(p + 1) % n] != 32)
