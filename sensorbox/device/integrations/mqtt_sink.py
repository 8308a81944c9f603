"""The MQTT sink service: store-and-forward of predictions, sound levels and events to a broker.

Topics (``base`` = ``<mqtt.prefix>/<device id>``):

- ``base/predictions``  ``{"t", "key", "class", "label", "confidence"}`` (QoS 1)
- ``base/soundlevel``   ``{"t", "key", "leq", "lmin", "lmax", "l10", "l50", "l90"}`` in dB (QoS 1)
- ``base/events``       ``{"t", "key", ...the event}`` (QoS 1)
- ``base/health``       ``{"t", "uptime_s", "heap_free", "delivered", "lost_segments"}`` (QoS 0, retained,
  at connect and every minute)
- ``base/status``       ``online`` / ``offline`` (retained; ``offline`` is the last will and is published
  explicitly at a clean stop, since a clean DISCONNECT discards the will)
- ``base/cmd/<name>``   commands in (``mqtt.commands``; JSON object; with ``mqtt.command_token`` set it must
  carry ``"token"``; retained commands are refused): ``reload_model``, ``label`` (``{"start","end","label"}``),
  ``label_set`` (``{"label"}``: the current label; ``null`` clears it), ``record_start`` (opens a recording at
  now with the current label, or ``{"label"}``), ``record_stop`` (closes it into a stored label, as
  ``POST /api/labels``). The current label and an open recording are kept in ``recording.json`` (data
  directory) across restarts. The result goes to ``base/cmd_result``.
- ``homeassistant/device/<id>/config``: discovery (``mqtt_cold.py``), retained, sent again whenever
  ``homeassistant/status`` says ``online``.

Every data message is read from flash through an ``Outbox`` cursor and the cursor moves only after the broker's
PUBACK: at-least-once, with ``key`` (``<device id>-<resource>-<t>``) to deduplicate; ``t`` is the original epoch
ms. The three resources are merged by time (predictions wait while the model loads after a boot: a device
upgraded from a version without the class table gets it then, from the model's classes); order always holds
within each topic. A prediction's ``label`` is the name its class had in the model that made it (the store's
class table). A backlog is replayed one message at a time with
``mqtt.replay_ms`` between messages. Segments that retention deleted before
delivery are counted in status and reported once as an ``outbox_loss`` event (which is itself delivered).
"""

import time

import asyncio

from sensorbox.device.mqtt import MQTTClient
from sensorbox.device.outbox import Outbox, flush_event, message

_RES = ("predictions", "soundlevel", "events")
_KEEPALIVE_S = 60
_HEALTH_MS = 60000




class MqttSink:
    def __init__(self, device):
        self.d = device
        self.client = None
        self.base = None
        self.state = "starting"
        self.outboxes = None
        self.queues = None
        self.lost_seen = None
        self.errors = 0
        self.commands = 0
        self.refused = 0
        self.announced = 0
        self._announce = False
        self._cmds = []
        self._health_at = 0
        self._stopping = False
        # [current label (cmd/label_set), start (epoch ms) and label of the open recording (cmd/record_start)]
        self.rec = [None, None, None]
        self._ctx = None  # (mqtt.tls_ca, ssl context)
        self._cold("restore")  # saved before a restart (mqtt_cold)

    def status(self):
        c = self.client
        out = {"enabled": self.d.config.get("mqtt.enabled"), "state": self.state, "errors": self.errors,
               "commands": self.commands, "commands_refused": self.refused, "discovery_sent": self.announced,
               "tls_verified": bool(self.d.config.get("mqtt.tls") and self.d.config.get("mqtt.tls_ca")),
               "label": self.rec[0], "recording": {"start": self.rec[1], "label": self.rec[2]} if self.rec[1] else None}
        if c is not None:
            out["connected"] = c.connected
            out["connects"] = c.connects
            out["last_error"] = c.error
            out["retransmits"] = c.retransmits
            out["backoff_ms"] = c.backoff_ms
        if self.outboxes is not None:
            res = {}
            for ob in self.outboxes:
                res[ob.resource] = {"delivered": ob.sent, "cursor": ob.t, "pending": ob.pending(),
                                    "lost_segments": ob.lost()}
            out["outbox"] = res
        return out

    def _health(self):
        import gc

        d = self.d
        n = lost = 0
        for ob in self.outboxes:
            n += ob.sent
            lost += ob.lost()
        return '{{"t":{},"uptime_s":{},"heap_free":{},"delivered":{},"lost_segments":{}}}'.format(
            d.platform.epoch_ms(), time.ticks_diff(time.ticks_ms(), d.health.boot_ticks) // 1000, gc.mem_free(),
            n, lost).encode()

    def _cold(self, fn, *args):
        from sensorbox.device import lazy

        try:
            return getattr(lazy.load("sensorbox.device.integrations.mqtt_cold"), fn)(self, *args)
        finally:
            lazy.unload("sensorbox.device.integrations.mqtt_cold")

    async def run(self):
        d = self.d
        cfg = d.config
        host = cfg.get("mqtt.host")
        if not host:
            self.state = "mqtt.host is not set"
            while True:
                await asyncio.sleep_ms(60000)
        base = self.base = "{}/{}".format(cfg.get("mqtt.prefix"), d.device_id)
        ctx = None
        if cfg.get("mqtt.tls"):
            # One TLS context (~3 KB in one block, plus the CA) made once and kept across restarts: a fragmented
            # heap may not have the block later. Made again only when the CA changes.
            ca = cfg.get("mqtt.tls_ca")
            if self._ctx is None or self._ctx[0] != ca:
                from sensorbox.device import lazy

                self._ctx = None
                try:
                    self._ctx = (ca, lazy.load("sensorbox.device.integrations.tls").context(ca, "mqtt.tls_ca"))
                except ValueError as e:
                    self.state = str(e)
                    d.log.error("mqtt", self.state)
                    while True:
                        await asyncio.sleep_ms(60000)
                finally:
                    lazy.unload("sensorbox.device.integrations.tls")
            ctx = self._ctx[1]
        if self.outboxes is None:
            self.outboxes = [Outbox(d.store, "mqtt", r) for r in _RES]
            self.lost_seen = [ob.lost() for ob in self.outboxes]
        self.queues = [[] for _ in _RES]
        c = self.client = MQTTClient("sensorbox-" + d.device_id, host, cfg.get("mqtt.port"),
                                     cfg.get("mqtt.username"), cfg.get("mqtt.password"), _KEEPALIVE_S,
                                     ssl=ctx, will=(base + "/status", b"offline", True, 1), on_message=self._on_msg)
        c.on_error = lambda why: d.log.warning("mqtt", "cannot connect to {}: {}".format(host, why))
        c.subs.append(("homeassistant/status", 1))
        if cfg.get("mqtt.commands"):
            c.subs.append((base + "/cmd/+", 1))
        try:
            while True:
                if self._stopping:
                    await asyncio.sleep_ms(1000)
                    continue
                if not c.connected:
                    self.state = "connecting"
                    await c.ensure()
                    self.state = "connected"
                    try:
                        await c.publish(base + "/status", b"online", True, 1)
                    except (OSError, asyncio.TimeoutError):
                        continue
                    self._announce = True
                try:
                    await self._step(c)
                except (OSError, asyncio.TimeoutError) as e:  # MQTTError is an OSError
                    self.errors += 1
                    c.close("{}: {}".format(type(e).__name__, e))
        finally:
            c.close()
            self.state = "stopped"

    async def stop(self):
        """Clean stop: retained ``offline`` (a DISCONNECT discards the last will), then DISCONNECT."""
        self._stopping = True
        c = self.client
        if c is not None and c.connected:
            try:
                await c.publish(self.base + "/status", b"offline", True, 1)
            except Exception:
                pass
            await c.disconnect()

    def _on_msg(self, topic, payload, retain):
        if topic == "homeassistant/status":
            if payload == b"online":
                self._announce = True
                flush_event(self.d.store).set()
        elif topic.startswith(self.base + "/cmd/"):
            if retain or len(self._cmds) >= 4:
                self.refused += 1
            else:
                self._cmds.append((topic[len(self.base) + 5:], payload))
                flush_event(self.d.store).set()  # wake _step if it waits for data

    async def _step(self, c):
        d = self.d
        if self._announce:
            try:
                topic, payload = self._cold("discovery")
            except MemoryError:  # no heap for its code right now: data goes on, discovery is tried again
                payload = None
                self.errors += 1
            if payload is not None:
                self._announce = False
                await c.publish(topic, payload, True, 1)
                self.announced += 1
        while self._cmds:
            try:
                res = self._cold("command", *self._cmds[0])
            except MemoryError:  # no heap for its code: refused with a reason, data goes on
                self.errors += 1
                import json

                res = json.dumps({"cmd": self._cmds[0][0], "ok": False, "error": "device is short of memory; retry"})
                d.log.warning("mqtt", "command {} refused: short of memory".format(self._cmds[0][0]))
                self.refused += 1
            self._cmds.pop(0)
            await c.publish(self.base + "/cmd_result", res, False, 1)
        if time.ticks_diff(time.ticks_ms(), self._health_at) >= 0:
            self._health_at = time.ticks_add(time.ticks_ms(), _HEALTH_MS)
            await c.publish(self.base + "/health", self._health(), True, 0)
        # the oldest row of the three outboxes goes first
        ev = flush_event(d.store)
        ev.clear()  # before looking: a flush point from here on wakes the wait below
        best = -1
        for i in range(len(_RES)):
            if i == 0 and d.model is None and d.model_error is None:
                continue  # the model is loading (after a boot): it gives its classes ids (store.class_ids)
            q = self.queues[i]
            if not q:
                q.extend(self.outboxes[i].read(8))
            if q and (best < 0 or q[0][0] < self.queues[best][0][0]):
                best = i
        if best < 0:  # nothing to send: until the store's next flush point (rows become readable only then)
            await ev.wait()
            return
        ob = self.outboxes[best]
        t, v = self.queues[best][0]
        await c.publish(self.base + "/" + ob.resource, self._payload(ob, t, v), False, 1)
        self.queues[best].pop(0)
        ob.ack(t)
        lost = ob.lost()
        if lost != self.lost_seen[best]:
            d.bus.publish("events", d.platform.epoch_ms(), {"type": "outbox_loss", "sink": "mqtt",
                                                            "resource": ob.resource,
                                                            "segments": lost - self.lost_seen[best]})
            self.lost_seen[best] = lost
        more = False
        for q in self.queues:
            if q:
                more = True
        await asyncio.sleep_ms(d.config.get("mqtt.replay_ms") if more else 0)

    def _payload(self, ob, t, v):
        head = '{{"t":{},"key":"{}"'.format(t, ob.key(self.d.device_id, t))
        r = ob.resource
        return message(self.d, r, head, v)

