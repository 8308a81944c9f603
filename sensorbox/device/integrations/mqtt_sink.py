"""The MQTT sink service: store-and-forward of predictions, sound levels and events to a broker, and a Home
Assistant device.

Topics (``base`` = ``<mqtt.prefix>/<device id>``):

- ``base/predictions``  ``{"t", "key", "class", "label", "confidence"}`` (QoS 1)
- ``base/soundlevel``   ``{"t", "key", "leq", "lmin", "lmax", "l10", "l50", "l90"}`` in dB (QoS 1)
- ``base/events``       ``{"t", "key", ...the event}`` (QoS 1)
- ``base/state/predictions``, ``base/state/soundlevel`` (QoS 0, not retained: a broker would hand a retained
  one out again after an outage): the same messages, only live ones (a row newer than ``_FRESH_MS`` when it is
  sent; a backlog being replayed is history and goes to the data topics only), on change and at most one per
  ``mqtt.state_every_s`` (the newest waits its turn); ``{}`` at each connect (before ``online``) and when Home
  Assistant says it is ``online`` (it shows the values it had before its own outage as current), so it shows
  "unknown", not an old value, until a live row arrives; after discovery the next live row is sent even if
  unchanged, and a row waiting for its turn is dropped (it may name a class of the model before: ``_fits``)
- ``base/state/events`` (not retained, QoS 0): live events as they happen (Home Assistant's event entity and
  device triggers)
- ``base/state/control`` (retained): ``{"label", "recording"}``, the current label and open recording
- ``base/health``       diagnostics (QoS 0, retained, at connect and every minute; ``mqtt_control.health``)
- ``base/status``       ``online`` / ``offline`` (retained; ``offline`` is the last will and is published
  explicitly at a clean stop, since a clean DISCONNECT discards the will)
- ``base/cmd/<name>``   commands in (``mqtt.commands``; JSON object; retained commands are refused):
  ``reload_model``, ``restart``, ``label`` (``{"start","end","label"}``), ``label_set`` (``{"label"}``: the
  current label; ``null`` or ``""`` clears it), ``record_start`` (opens a recording at now with the current
  label, or ``{"label"}``), ``record_stop`` (closes it into a stored label, as ``POST /api/labels``), ``clip``
  (an audio clip now, as ``POST /api/clips``: refused while ``clip.enabled`` is off or one records). Who may
  send them: with ``mqtt.command_token`` set, whoever puts it in the JSON as ``"token"``; without one, any
  client of a broker that authenticates its clients (the device logs in with ``mqtt.username`` and, at every
  connect, checks that a client without credentials is refused: ``mqtt_control.connect``), the broker's ACL
  deciding who may publish to the device's ``cmd`` topics. The result goes to ``base/cmd_result``.
- ``homeassistant/device/<id>/config``: discovery (``mqtt_control.py``), retained, sent again at each connect,
  when ``homeassistant/status`` says ``online`` and when another model is activated.

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
from micropython import const

from sensorbox.device.integrations.mqtt import MQTTClient
from sensorbox.device.integrations.outbox import Outbox, flush_event, message

_RES = ("predictions", "soundlevel", "events")
_KEEPALIVE_S = 60
_HEALTH_MS = 60000
_FRESH_MS = const(15000)  # a row older than this when it is sent is history: never on a state topic


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
        self._trusted = None  # the broker refused a client without credentials at the last connect (connect)
        self.classes = None  # the class list (the model's own) that the last discovery listed
        # state topics of predictions and sound levels, 4 slots each: the row shown last, the newer row waiting
        # for its turn and its payload, and when the last one was shown (ticks_ms)
        self._live = [None] * 8
        self._announce = 0  # discovery due: 1; 2 also "unknown" on the state topics (Home Assistant came online)
        self._cmds = []
        self._health_at = 0
        self._stopping = False
        # [current label (cmd/label_set), start (epoch ms) and label of the open recording (cmd/record_start)]
        self.rec = [None, None, None]
        self.tls = None  # (CA, ssl context): tls.context
        self._cold("restore")  # saved before a restart (mqtt_control)

    def status(self):
        c = self.client
        out = {"enabled": self.d.config.get("mqtt.enabled"), "state": self.state, "errors": self.errors,
               "commands": self.commands, "commands_refused": self.refused, "discovery_sent": self.announced,
               "broker_auth": self._trusted,
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

    def _cold(self, fn, *args):
        from sensorbox.device import lazy

        return lazy.call("sensorbox.device.integrations.mqtt_control", fn, self, *args)

    async def _send(self, c, fn, *args):
        # Publish what mqtt_control's ``fn`` returns: [(topic, payload, retain, qos)]
        try:
            msgs = self._cold(fn, *args)
        except MemoryError:  # no heap for its code right now: data goes on, the rest is tried again or refused
            self.errors += 1
            if fn == "discovery":
                self._announce = args[0]
            if fn != "command":
                return
            import json

            msgs = ((self.base + "/cmd_result", json.dumps({"cmd": args[0], "ok": False,
                                                            "error": "device is short of memory; retry"}), False, 1),)
            self.d.log.warning("mqtt", "command {} refused: short of memory".format(args[0]))
            self.refused += 1
        for m in msgs:
            await c.publish(*m)

    async def run(self):
        d = self.d
        cfg = d.config
        host = cfg.get("mqtt.host")
        if not host:
            self.state = "mqtt.host is not set"
            while True:
                await asyncio.sleep_ms(60000)
        base = self.base = "{}/{}".format(cfg.get("mqtt.prefix"), d.device_id)
        # One TLS context, kept from the first start with mqtt.tls on (tls.context: its ~3 KB block may be missing
        # later), verifying with mqtt.tls_ca when that is set; until a sink keeps one, a start without TLS keeps
        # its block for it (tls.spare: the first TLS start may come late, on a cut-up heap).
        from sensorbox.device import lazy

        ctx = None
        if not cfg.get("mqtt.tls"):
            if lazy.tls_spare is None:
                try:
                    lazy.call("sensorbox.device.integrations.tls", "spare", d)
                except MemoryError:  # (no block for its code now: the next start tries again)
                    pass
        else:
            self.client = None  # (the last start's: it holds the old context)
            try:
                ctx = lazy.call("sensorbox.device.integrations.tls", "context", d, self, cfg.get("mqtt.tls_ca"),
                                "mqtt.tls_ca")
            except ValueError as e:
                self.state = str(e)
                d.log.error("mqtt", self.state)
                while True:
                    await asyncio.sleep_ms(60000)
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
                    if cfg.get("mqtt.commands") and not cfg.get("mqtt.command_token"):
                        self._trusted = await self._cold("connect", c)  # (a coroutine: its code lives until it ends)
                    self.state = "connected"
                    try:
                        for i in (0, 4):  # nothing from before is shown as current: "unknown" until a live row
                            self._live[i] = self._live[i + 1] = self._live[i + 3] = None
                            await c.publish("{}/state/{}".format(base, _RES[i // 4]), b"{}", False, 0)
                        await c.publish(base + "/status", b"online", True, 1)
                    except (OSError, asyncio.TimeoutError):
                        continue
                    self._announce = 1
                    self._health_at = time.ticks_ms()
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
        # payload None: larger than the client takes (mqtt._MAX_IN), answered as such
        if topic == "homeassistant/status":
            if payload == b"online":
                self._announce = 2
                flush_event(self.d.store).set()
        elif topic.startswith(self.base + "/cmd/"):
            if retain or len(self._cmds) >= 4:
                self.refused += 1
            else:
                self._cmds.append((topic[len(self.base) + 5:], payload))
                flush_event(self.d.store).set()  # wake _step if it waits for data

    async def _step(self, c):
        d = self.d
        m = d.ml.model
        if m is not None and m.classes is not self.classes and not self._announce:
            self._announce = 1  # another model: the activity's classes in discovery change
        if self._announce and (m is not None or d.ml.error is not None):  # (not while a model loads)
            a = self._announce
            self._announce = 0
            await self._send(c, "discovery", a)
            # the health message and the update entity's state 1 s after it: a discovery update that Home
            # Assistant applies after a state message sets the entity's release summary back to none
            self._health_at = time.ticks_add(time.ticks_ms(), 1000)
        while self._cmds:
            await self._send(c, "command", *self._cmds.pop(0))
        if time.ticks_diff(time.ticks_ms(), self._health_at) >= 0:
            self._health_at = time.ticks_add(time.ticks_ms(), _HEALTH_MS)
            await self._send(c, "health")
        await self._states(c)
        # the oldest row of the three outboxes goes first
        ev = flush_event(d.store)
        ev.clear()  # before looking: a flush point from here on wakes the wait below
        best = -1
        for i in range(len(_RES)):
            if i == 0 and d.ml.model is None and d.ml.error is None:
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
        p = self._payload(ob, t, v)
        await c.publish(self.base + "/" + ob.resource, p, False, 1)
        self.queues[best].pop(0)
        ob.ack(t)
        if t > d.platform.epoch_ms() - _FRESH_MS and self._fits(best, v):  # live, not history: the state now
            if best == 2:
                await c.publish(self.base + "/state/events", p, False, 0)
            else:  # shown at its turn if it says something new (the newest row wins)
                k = best * 4
                self._live[k + 1] = v if v != self._live[k] else None
                self._live[k + 2] = p
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

    def _fits(self, r, v):
        # A live row names only classes the last discovery listed (Home Assistant refuses others with a warning):
        # a prediction or class change the previous model made, sent after a model change, is data only
        if r == 1:
            return True
        if r == 2 and b"class_change" not in v:
            return True
        m = self.d.ml.model
        if m is None or m.classes is not self.classes:
            return False
        if r == 0:
            g = m.gids  # (an array: no "in" on MicroPython's)
            for i in range(len(g) if g is not None else 0):
                if g[i] == v[0]:
                    return True
            return v[0] < 0
        import json

        to = json.loads(v).get("to")
        return to == "unknown" or to in m.classes

    async def _states(self, c):
        # A waiting live row goes to its state topic once mqtt.state_every_s passed since the last one there
        lv = self._live
        for i in (0, 4):
            at = lv[i + 3]
            if lv[i + 1] is not None and (at is None or time.ticks_diff(time.ticks_ms(), at) >= self.d.config.get(
                    "mqtt.state_every_s") * 1000):
                lv[i] = lv[i + 1]
                p = lv[i + 2]
                lv[i + 1] = lv[i + 2] = None
                lv[i + 3] = time.ticks_ms()
                await c.publish("{}/state/{}".format(self.base, _RES[i // 4]), p, False, 0)

    def _payload(self, ob, t, v):
        head = '{{"t":{},"key":"{}"'.format(t, ob.key(self.d.device_id, t))
        r = ob.resource
        return message(self.d, r, head, v)
