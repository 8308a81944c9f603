"""The webhook sink service: store-and-forward of events (and, per resource filter, predictions and sound
levels) to up to three URLs, one JSON POST per message and URL.

Receivers (``Hook``, one instance per configured URL, all sharing this code): webhook 1 is ``webhook.url``,
``webhook.secret``, ``webhook.resources``, ``webhook.events``; webhooks 2 and 3 are ``webhook.2.*`` and
``webhook.3.*`` (an empty URL is off). ``webhook.enabled``, ``webhook.timeout_s``, ``webhook.retry_max_s`` and
``webhook.tls_ca`` apply to all. ``events`` (comma separated event types, empty = all) filters which events a
receiver gets: the others move its cursor without a POST.

Body: ``{"device", "resource", "t", "key", ...}``: an event's own fields, or ``class``/``label``/``confidence``
for predictions, or ``leq``/``lmin``/``lmax``/``l10``/``l50``/``l90`` (dB) for sound levels; ``t`` is the
original epoch ms. Headers:

- ``X-Sensorbox-Timestamp``: epoch seconds of this attempt
- ``X-Sensorbox-Signature``: ``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` (only when the receiver's
  secret is set): receivers recompute it and reject stale timestamps (replays)
- ``Idempotency-Key``: ``<device id>-<resource>-<t>``, the same on every resend of a message

Each receiver reads each resource through its own ``Outbox`` cursor (``webhook.<resource>`` for webhook 1,
``webhook2.<resource>``, ``webhook3.<resource>``), advanced only after a 2xx reply: at-least-once, in time order
across the chosen resources; a receiver that is down holds back only its own cursors. Anything else (another
status, a refused connection, a refused certificate, a timeout of ``webhook.timeout_s`` on connect, send or
reply) is retried, the same message first, after an exponential backoff (1 s doubling up to
``webhook.retry_max_s``) with jitter (a random 50-100 % of it).

Resident while enabled: this module and ``httpc`` (the client, HMAC). Settings parsing, TLS contexts and the
status are in ``webhook_settings`` and ``tls`` (loaded only while they run).
"""

import json
import random

import asyncio

from sensorbox.device.integrations import httpc
from sensorbox.device.integrations.outbox import Outbox, flush_event, message


class Hook:
    """One receiver: its URL, filters, cursors and delivery status."""

    def __init__(self, device, slot, url, parsed, names, types, secret, error):
        self.d = device
        self.slot = slot
        self.url = url
        self._u = parsed
        self.names = names
        self.types = types  # event types sent (a tuple), or None for all
        self.mac = httpc.Hmac(secret) if secret else None
        self.state = error or "running"
        self.outboxes = None
        if error is None:
            sink = "webhook" if slot == 1 else "webhook{}".format(slot)
            self.outboxes = [Outbox(device.store, sink, r) for r in names]
            self.lost_seen = [ob.lost() for ob in self.outboxes]
        self.attempts = 0  # POSTs tried
        self.failures = 0
        self.skipped = 0  # events the filter did not pass
        self.fails_in_row = 0
        self.retry_ms = 0
        self.last_ok_ms = None
        self.last_error = None
        self.last_error_ms = None

    async def run(self, timeout, cap, ctx):
        d = self.d
        if self.outboxes is None:
            while True:
                await asyncio.sleep_ms(60000)
        names = self.names
        queues = [[] for _ in names]
        ev = flush_event(d.store)
        while True:
            try:
                ev.clear()  # before looking: a flush point from here on wakes the wait below
                best = -1
                for i in range(len(names)):
                    if names[i] == "predictions" and d.ml.model is None and d.ml.error is None:
                        continue  # the model is loading (after a boot): it gives its classes ids (store.class_ids)
                    q = queues[i]
                    if not q:
                        q.extend(self.outboxes[i].read(4))
                    if q and (best < 0 or q[0][0] < queues[best][0][0]):
                        best = i
                if best < 0:  # nothing to send: until the store's next flush point (rows become readable only then)
                    await ev.wait()
                    continue
                ob = self.outboxes[best]
                t, v = queues[best][0]
                if self.types is not None and ob.resource == "events" and not self._wanted(v):
                    queues[best].pop(0)
                    ob.ack(t)
                    ob.sent -= 1  # passed over, not delivered
                    self.skipped += 1
                    await asyncio.sleep_ms(0)
                    continue
                key = ob.key(d.device_id, t)
                body = self._payload(ob.resource, t, v, key)
                ts = str(d.platform.epoch_ms() // 1000)
                h = "X-Sensorbox-Timestamp: {}\r\nIdempotency-Key: {}\r\n".format(ts, key)
                if self.mac is not None:
                    h += "X-Sensorbox-Signature: sha256={}\r\n".format(self.mac.hexdigest(ts.encode(), b".", body))
                self.attempts += 1
                err = None
                try:
                    code = await httpc.post(self._u, body, h.encode(), timeout, ctx=ctx)
                    if not 200 <= code < 300:
                        err = "HTTP {}".format(code)
                except asyncio.TimeoutError:
                    err = "timeout"
                except (OSError, ValueError) as e:  # a refused certificate is a ValueError (mbedTLS's words)
                    err = "{}: {}".format(type(e).__name__, " ".join(str(e).split()))
                if err is not None:
                    self.failures += 1
                    self.fails_in_row += 1
                    self.last_error = err
                    self.last_error_ms = d.platform.epoch_ms()
                    self.state = "retrying"
                    b = 1000 << min(self.fails_in_row - 1, 16)
                    b = cap if b > cap else b
                    self.retry_ms = b // 2 + (random.getrandbits(16) * (b // 2)) // 65536
                    await asyncio.sleep_ms(self.retry_ms)
                    continue
                self.fails_in_row = 0
                self.retry_ms = 0
                self.state = "running"
                self.last_ok_ms = d.platform.epoch_ms()
                queues[best].pop(0)
                ob.ack(t)
                lost = ob.lost()
                if lost != self.lost_seen[best]:
                    d.bus.publish("events", d.platform.epoch_ms(), {"type": "outbox_loss", "sink": "webhook",
                                                                    "slot": self.slot, "resource": ob.resource,
                                                                    "segments": lost - self.lost_seen[best]})
                    self.lost_seen[best] = lost
                await asyncio.sleep_ms(0)
            except MemoryError:  # (a cut-up heap at a request's peak: the rows wait in the outbox, read again after
                self.state = "retrying"  # a pause; the service failing for it was a restart: the gyroscope's
                self.last_error = "device short of memory"  # every-feature soak at 136wK)
                await asyncio.sleep_ms(1000)

    def _wanted(self, v):
        try:
            return json.loads(v).get("type") in self.types
        except (ValueError, AttributeError):
            return False

    def _payload(self, r, t, v, key):
        head = '{{"device":"{}","resource":"{}","t":{},"key":"{}"'.format(self.d.device_id, r, t, key)
        return message(self.d, r, head, v)


class WebhookSink:
    """The service: one ``Hook`` per configured URL, each in its own task."""

    def __init__(self, device):
        self.d = device
        self.state = "starting"
        self.hooks = []
        self.tls = None  # (CA, ssl context): tls.context

    def status(self):
        try:
            return self._cold("status")
        except MemoryError:  # no block for its code right now: the figures that need none
            return {"enabled": True, "state": self.state,
                    "hooks": [{"slot": h.slot, "state": h.state, "last_error": h.last_error,
                               "failures": h.failures} for h in self.hooks]}

    def _cold(self, fn, *args):
        from sensorbox.device import lazy

        return lazy.call("sensorbox.device.integrations.webhook_settings", fn, self, *args)

    async def run(self):
        cfg = self.d.config
        self.hooks = []
        try:
            slots, ctx = self._cold("settings")
        except ValueError as e:
            self.state = str(e)
            while True:
                await asyncio.sleep_ms(60000)
        self.hooks = [Hook(self.d, *s) for s in slots]
        timeout = cfg.get("webhook.timeout_s") * 1000
        cap = cfg.get("webhook.retry_max_s") * 1000
        self.state = "running"
        tasks = [asyncio.create_task(h.run(timeout, cap, ctx)) for h in self.hooks[1:]]
        try:
            await self.hooks[0].run(timeout, cap, ctx)
        finally:
            for tk in tasks:
                tk.cancel()
