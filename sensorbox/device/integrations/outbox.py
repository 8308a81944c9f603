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

Rows are read through ``store/reader.py`` (its loop over segments and its records: the outbox is a client of the
store that sees no bytes), only from blocks whose CRC-32 holds (a corrupt block is skipped and counted in the
store's status, never sent). Every outbox shares one reader (``reader.bus_reader``): ``read`` runs without
awaiting, so no two reads overlap. ``message`` builds the JSON body every sink sends for a row.

Values: tuples of ints for numeric resources (see store/core.py), the event's JSON text (bytes) for ``events``.
"""

from sensorbox.device.store.core import seg_names
from sensorbox.device.store.reader import bus_reader, rows, segments


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
        self.r = store.resource(resource)  # (made now if it is made on first use)
        self.t = store.cursor(self.name, resource, start)
        self.sent = 0
        self._hint = None  # (segment name, offset of the block holding the next row, time before it, changes)
        bus_reader()  # (made now, with the outbox, not at its first read)

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
        if hint is not None and (hint[2] != after or hint[3] != self.store.changes):
            hint = None  # (segments opened or recoded since: block offsets may differ)
        rd = bus_reader()
        g = segments(self.store, r, seg_names(r), after, None, rd, 0 if hint is None else hint[0], True)
        try:
            for name in g:
                if name is None:
                    continue
                if hint is not None and hint[0] == name:
                    rd.seek(hint[1])
                self._rows(rd, name, after, n, out)
                if len(out) >= n:
                    break
        finally:
            g.close()  # (closes the segment it stopped in)
        return out

    def _rows(self, rd, name, since, n, out):
        """Rows with t > ``since`` from the blocks of the open segment ``name``, until ``out`` holds ``n``."""
        while len(out) < n:
            k = rd.next()
            if k == 0:
                return
            if k < 0:
                continue
            for row in rows(rd):  # (t, value)
                if row[0] > since:
                    out.append(row)
                    self._hint = (name, rd.pos, row[0], self.store.changes)
                    if len(out) >= n:
                        return


SOUNDLEVEL = ("leq", "lmin", "lmax", "l10", "l50", "l90")


def db_text(v):
    """Centi-dB int as a decimal string (no float formatting: float32 on the device)."""
    a = -v if v < 0 else v
    return "{}{}.{:02d}".format("-" if v < 0 else "", a // 100, a % 100)


def class_name(device, k):
    """The name of stored class id ``k``: from the running model when it has that class, else from the store's
    class table (a class of an earlier model); "unknown" for -1 (or an id the table lost)."""
    m = device.ml.model
    g = m.gids if m is not None else None
    if g is not None:
        for i in range(len(g)):
            if g[i] == k:
                return m.classes[i]
    return device.store.class_name(k) or "unknown"


def message(device, resource, head, v):
    """The JSON body (bytes) every sink sends for one stored row: ``head`` is the sink's opening fields without
    the closing brace (e.g. ``'{"t":1700000000000,"key":"..."'``), then the row's own fields. A prediction's
    ``class`` is its id in the store's class table and ``label`` the name of the model that made it."""
    if resource == "events":
        body = bytes(v)
        return head.encode() + (b"," + body[1:] if len(body) > 2 else b"}")
    if resource == "predictions" or resource == "soundclass":  # (a sound class: named by the class table)
        import json

        return '{},"class":{},"label":{},"confidence":{}.{:03d}}}'.format(
            head, v[0], json.dumps(class_name(device, v[0])), v[1] // 1000, v[1] % 1000).encode()
    parts = [head]
    for i in range(len(SOUNDLEVEL)):
        parts.append(',"{}":{}'.format(SOUNDLEVEL[i], db_text(v[i])))
    parts.append("}")
    return "".join(parts).encode()
