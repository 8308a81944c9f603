"""Durable outbox: what a sink (MQTT, webhooks) sends is read back from the store on flash, after a persisted
reader cursor, so outages and reboots lose nothing within the store's budget.

    ob = Outbox(store, "mqtt", "predictions")
    for t, value in ob.read(8):        # rows after the cursor, oldest first (nothing is removed)
        await send(...)                # ... and only once the peer acknowledged:
        ob.ack(t)

Rows come only from flash and only after a flush point passed them (the open segment is not read while it holds
unsynced rows), so a message is always on flash before any send is attempted. The cursor is the store's
(``store.cursor``/``store.advance``, saved in ``cursors.json`` every 10 s and at a clean stop): after a crash the
last few seconds of acknowledged rows are sent again (at-least-once). Each row's time is unique and increasing
within a resource (the store guarantees it), so ``key(t)`` is a stable idempotency key across resends and
reboots, and the original timestamp travels with the row. Retention past the budget deletes unread segments:
``lost()`` counts them (the store's figure for this cursor).

Values: tuples of ints for numeric resources (see store/core.py), the event's JSON text (bytes) for ``events``.
"""

import struct

from sensorbox.device.store.core import HDR, TEXT, check_header, seg_names


def flush_event(store):
    """The event ``store.flush`` sets at each flush point (rows become readable then): a sink with nothing to send
    waits for it instead of polling. Made on first use, so a device without sinks has none."""
    ev = store.flushed
    if ev is None:
        import asyncio

        ev = store.flushed = asyncio.Event()
    return ev


class Outbox:
    def __init__(self, store, sink, resource, start=None):
        self.store = store
        self.resource = resource
        self.name = sink + "." + resource  # the cursor's name
        self.r = store.by_name[resource]
        self.t = store.cursor(self.name, resource, start)
        self.sent = 0
        self._hint = None  # (segment name, byte offset of the next row, time before it)
        self._hb = bytearray(HDR)
        self._rb = bytearray(16)

    def lost(self):
        """Segments that retention deleted before this sink had delivered them."""
        return self.store.cursors[self.name][2]

    def pending(self):
        """True if the store holds (or is about to write) rows after the cursor."""
        lt = self.r.last_t
        return lt is not None and lt > self.t

    def ack(self, t):
        """Every row up to ``t`` was delivered (acknowledged by the peer)."""
        if t > self.t:
            self.t = t
            self.store.advance(self.name, t)
            self.sent += 1

    def key(self, device_id, t):
        return "{}-{}-{}".format(device_id, self.resource, t)

    def read(self, n):
        """Up to ``n`` rows after the cursor, as (t, value), oldest first."""
        out = []
        if not self.pending():
            return out
        r = self.r
        after = self.t
        hint = self._hint
        if hint is not None and hint[2] != after:
            hint = None
        names = seg_names(r)
        hb = self._hb
        for i in range(len(names)):
            name = names[i]
            if hint is not None and name < hint[0]:
                continue
            if i + 1 < len(names) and names[i + 1] <= after:
                continue
            if r.f is not None and name == r.seg_name and r.dirty:
                break  # rows written since the last flush point are not durable yet
            try:
                f = open("{}/{}.seg".format(r.dir, name), "rb")
            except OSError:
                continue  # deleted by retention meanwhile
            with f:
                size = f.seek(0, 2)
                f.seek(0)
                try:
                    h = check_header(hb, f.readinto(hb) or 0, size)
                except ValueError:
                    continue  # torn: the store deals with it at the next start
                off = hint[1] if hint is not None and hint[0] == name else None
                if r.kind == TEXT:
                    self._text(f, name, off, after, n, out)
                else:
                    self._timed(f, h, name, off, after, n, out)
            if len(out) >= n:
                break
        return out

    def _text(self, f, name, off, after, n, out):
        off = HDR if off is None else off
        f.seek(off)
        while len(out) < n:
            line = f.readline()
            if not line or line[-1:] != b"\n":
                return  # the end, or a torn last line
            off += len(line)
            tab = line.find(b"\t")
            try:
                t = int(line[:tab])
            except ValueError:
                continue
            if t > after:
                out.append((t, line[tab + 1:-1]))
                self._hint = (name, off, t)

    def _timed(self, f, h, name, off, after, n, out):
        size, t0, rb = h[0], h[5], h[4]
        if rb > len(self._rb):
            raise ValueError("outbox: rows of {} bytes are too wide ({})".format(rb, self.resource))
        rows = (size - HDR) // rb
        b = self._rb
        if off is not None:
            i = (off - HDR) // rb
        else:  # first row with t > after
            lo, hi = 0, rows
            d = after - t0
            while lo < hi:
                mid = (lo + hi) // 2
                f.seek(HDR + mid * rb)
                f.readinto(b, 4)
                if struct.unpack_from("<i", b, 0)[0] <= d:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo
        fmt = "<i{}h".format(h[2])
        f.seek(HDR + i * rb)
        mv = memoryview(b)[:rb]
        while i < rows and len(out) < n:
            if (f.readinto(mv) or 0) < rb:
                return
            v = struct.unpack_from(fmt, b, 0)
            i += 1
            t = t0 + v[0]
            if t > after:
                out.append((t, v[1:]))
                self._hint = (name, HDR + i * rb, t)


SOUNDLEVEL = ("leq", "lmin", "lmax", "l10", "l50", "l90")


def db_text(v):
    """Centi-dB int as a decimal string (no float formatting: float32 on the device)."""
    a = -v if v < 0 else v
    return "{}{}.{:02d}".format("-" if v < 0 else "", a // 100, a % 100)


def message(device, resource, head, v):
    """The JSON body (bytes) every sink sends for one stored row: ``head`` is the sink's opening fields without
    the closing brace (e.g. ``'{"t":1700000000000,"key":"..."'``), then the row's own fields."""
    if resource == "events":
        body = bytes(v)
        return head.encode() + (b"," + body[1:] if len(body) > 2 else b"}")
    if resource == "predictions":
        import json

        m = device.model
        k = v[0]
        label = m.classes[k] if m is not None and 0 <= k < len(m.classes) else "unknown"
        return '{},"class":{},"label":{},"confidence":{}.{:03d}}}'.format(
            head, k, json.dumps(label), v[1] // 1000, v[1] % 1000).encode()
    parts = [head]
    for i in range(len(SOUNDLEVEL)):
        parts.append(',"{}":{}'.format(SOUNDLEVEL[i], db_text(v[i])))
    parts.append("}")
    return "".join(parts).encode()
