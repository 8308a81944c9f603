"""The webhook sink service: store-and-forward of events (and, per ``webhook.resources``, predictions and sound
levels) to one URL, one JSON POST per message.

Body: ``{"device", "resource", "t", "key", ...}``: an event's own fields, or ``class``/``label``/``confidence``
for predictions, or ``leq``/``lmin``/``lmax``/``l10``/``l50``/``l90`` (dB) for sound levels; ``t`` is the
original epoch ms. Headers:

- ``X-Sensorbox-Timestamp``: epoch seconds of this attempt
- ``X-Sensorbox-Signature``: ``sha256=<hex HMAC-SHA256(webhook.secret, "<timestamp>.<body>")>`` (only when a secret
  is set): receivers recompute it and reject stale timestamps (replays)
- ``Idempotency-Key``: ``<device id>-<resource>-<t>``, the same on every resend of a message

Each resource is read through its own ``Outbox`` cursor (``webhook.<resource>``), advanced only after a 2xx reply:
at-least-once, in time order across the chosen resources. Anything else (another status, a refused connection,
a timeout of ``webhook.timeout_s`` on connect, send or reply) is retried, the same message first, after an
exponential backoff (1 s doubling up to ``webhook.retry_max_s``) with jitter (a random 50-100 % of it).

Resident while enabled: this module and ``httpc`` (the client, HMAC). Settings parsing and the status are in
``webhook_cold`` (loaded only while they run).
"""

import random

import asyncio

from sensorbox.device.integrations import httpc
from sensorbox.device.outbox import Outbox, message

_RES = ("predictions", "soundlevel", "events")




class WebhookSink:
    def __init__(self, device):
        self.d = device
        self.state = "starting"
        self.url = None
        self.outboxes = None
        self.lost_seen = None
        self.attempts = 0  # POSTs tried
        self.failures = 0
        self.fails_in_row = 0
        self.retry_ms = 0
        self.last_ok_ms = None
        self.last_error = None
        self.last_error_ms = None

    def status(self):
        try:
            return self._cold("status")
        except MemoryError:  # no block for its code right now: the figures that need none
            return {"enabled": True, "state": self.state, "last_error": self.last_error, "failures": self.failures}

    def _cold(self, fn, *args):
        from sensorbox.device import lazy

        try:
            return getattr(lazy.load("sensorbox.device.integrations.webhook_cold"), fn)(self, *args)
        finally:
            lazy.unload("sensorbox.device.integrations.webhook_cold")

    async def run(self):
        d = self.d
        cfg = d.config
        try:
            url, names = self._cold("settings")
        except ValueError as e:
            self.state = "webhook.url is not set" if not cfg.get("webhook.url") else str(e)
            while True:
                await asyncio.sleep_ms(60000)
        self.url = cfg.get("webhook.url")
        for r in _RES:
            if r not in names:
                d.store.drop_cursor("webhook." + r)  # do not hold back data nobody will read
        self.outboxes = [Outbox(d.store, "webhook", r) for r in names]
        self.lost_seen = [ob.lost() for ob in self.outboxes]
        queues = [[] for _ in names]
        secret = cfg.get("webhook.secret")
        mac = httpc.Hmac(secret) if secret else None
        timeout = cfg.get("webhook.timeout_s") * 1000
        cap = cfg.get("webhook.retry_max_s") * 1000
        self.state = "running"
        while True:
            best = -1
            for i in range(len(names)):
                if names[i] == "predictions" and d.model is None and d.model_error is None:
                    continue  # the model is loading (after a boot): its class names make the labels
                q = queues[i]
                if not q:
                    q.extend(self.outboxes[i].read(4))
                if q and (best < 0 or q[0][0] < queues[best][0][0]):
                    best = i
            if best < 0:
                await asyncio.sleep_ms(200)
                continue
            ob = self.outboxes[best]
            t, v = queues[best][0]
            key = ob.key(d.device_id, t)
            body = self._payload(ob.resource, t, v, key)
            ts = str(d.platform.epoch_ms() // 1000)
            h = "X-Sensorbox-Timestamp: {}\r\nIdempotency-Key: {}\r\n".format(ts, key)
            if mac is not None:
                h += "X-Sensorbox-Signature: sha256={}\r\n".format(mac.hexdigest(ts.encode(), b".", body))
            self.attempts += 1
            err = None
            try:
                code = await httpc.post(url, body, h.encode(), timeout)
                if not 200 <= code < 300:
                    err = "HTTP {}".format(code)
            except asyncio.TimeoutError:
                err = "timeout"
            except (OSError, ValueError) as e:
                err = "{}: {}".format(type(e).__name__, e)
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
                                                                "resource": ob.resource,
                                                                "segments": lost - self.lost_seen[best]})
                self.lost_seen[best] = lost
            await asyncio.sleep_ms(0)

    def _payload(self, r, t, v, key):
        head = '{{"device":"{}","resource":"{}","t":{},"key":"{}"'.format(self.d.device_id, r, t, key)
        return message(self.d, r, head, v)
