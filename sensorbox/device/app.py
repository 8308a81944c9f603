"""The device application: wires config, log, sensors, services and the HTTP API, then runs the event loop.

    import sensorbox.device.app as app
    app.main()            # what main.py does on the device and on the unix port

Services (each supervised, see ``supervisor``): ``lag`` (loop-lag monitor), one sampler per sensor,
``housekeeping`` (log to flash, heap low-water mark), ``http`` (the API).
"""

import errno
import gc
import os

import asyncio

from sensorbox.device import platform as platform_mod
from sensorbox.device.auth import Auth
from sensorbox.device.bus import Bus
from sensorbox.device.config import Config
from sensorbox.device.health import Health
from sensorbox.device.log import Log
from sensorbox.device.sensors.sampler import Sensor
from sensorbox.device.soundmeter import SoundMeter
from sensorbox.device.supervisor import LagMonitor, Supervisor

# Which config keys each sensor depends on: a change restarts its sampler.
_SENSOR_KEYS = {"accel": ("accel.", "sim.replay_"), "mic": ("mic.", "sim.mic_")}


def _makedirs(path):
    parts = path.rstrip("/").split("/")
    cur = ""
    for i, p in enumerate(parts):
        cur = p if i == 0 else cur + "/" + p
        if not cur or cur == ".":
            continue
        try:
            os.mkdir(cur)
        except OSError:
            pass


class Device:
    exit_code = 0  # set when the app stops itself; main() exits with it (69: the HTTP port is in use)

    def __init__(self, platform=None, echo_log=True):
        self.platform = platform or platform_mod.get()
        data = self.platform.data_dir
        _makedirs(data)
        self.log = Log(self.platform.epoch_ms, data + "/log.txt", echo=echo_log)
        self.sensors = {}
        # Rings first, while the heap is empty: 5 s of accelerometer at up to 100 Hz, 64 ms of sound at 16 kHz
        # (its reader runs every few tens of ms). They are never reallocated.
        self.sensors["accel"] = Sensor("accel", self._driver_factory("accel"), self.log, 3, 500)
        # 1024 = config_schema.MIC_RING_FRAMES, which bounds mic.poll_ms (the schema is not loaded here)
        self.sensors["mic"] = Sensor("mic", self._driver_factory("mic"), self.log, 1, 1024)
        self.config = Config(data + "/config.json", self.log)
        self.config.device = self
        self.log.set_level(self.config.get("log.level"))
        self.log.file_bytes = self.config.get("log.file_kb") * 1024
        self.device_id = self.platform.unique_id(self.log)
        self.supervisor = Supervisor(self.log)
        self.bus = Bus(self.log)
        from sensorbox.device.store.core import Store

        # The store: first subscriber of the analysis results (see store/core.py for the value shapes).
        self.store = Store(data + "/store", self.log, self.platform.epoch_ms, self.platform.flash_stats)
        self.store.configure(self.config)
        self.store.open()
        for topic in ("features", "predictions", "soundlevel", "events"):
            self.bus.subscribe(topic, self.store.on_bus)
        self.lag = LagMonitor()
        self.soundmeter = SoundMeter(self)  # sound levels from the mic ring (sound.* config)
        self.auth = Auth(data + "/auth.json", self.log, getattr(self.platform, "admin_password", None))
        from sensorbox.device import lazy

        try:  # files read later (per request, by a service): what is wrong with them is set aside and said now
            lazy.load("sensorbox.device.files").check_boot(self)
        finally:
            lazy.unload("sensorbox.device.files")
        self.health = Health(self)
        self.model = self.model_error = None  # the classifier in use (see models.py) / why there is none
        self.pipeline = None  # made when its service first starts (after the HTTP server has its RAM)
        self.http = None
        self.mqtt = None  # the MQTT sink (integrations/mqtt_sink.py), made when mqtt.enabled is first on
        self.webhook = None  # the webhook sink (integrations/webhook.py), made when webhook.enabled is first on
        self._stop = None
        self.config.listen(self.supervisor.config_changed)
        self.config.listen(self._on_config)

    def _driver_factory(self, name):
        def make():
            if not self.config.get(name + ".enabled"):
                return None
            drv = self.platform.sensor(name, self.config, self.log)
            if drv is None:
                self.log.warning(name, "no {} on this board".format(name))
            return drv

        return make

    def _on_config(self, changed):
        if "log.level" in changed:
            self.log.set_level(self.config.get("log.level"))
        if "log.file_kb" in changed:
            self.log.file_bytes = self.config.get("log.file_kb") * 1024

    async def _housekeeping(self):
        n = 0
        while True:
            await asyncio.sleep_ms(500)
            self.health.sample_heap(True)
            n += 1
            if n % 4 == 0 and self.log.pending():
                self.log.flush()

    def _make_http(self):
        from sensorbox.device.http import api
        from sensorbox.device.http.server import make_app

        self.http = make_app(self.auth, self.log)
        api.add_routes(self.http, self)
        from sensorbox.device.http import model_api

        model_api.add_routes(self.http, self)
        from sensorbox.device.http import data_api

        data_api.add_routes(self.http, self)
        from sensorbox.device import lazy

        try:  # http.cors_origin: two small response hooks; the module itself is not kept
            lazy.load("sensorbox.device.http.cors").install(self.http, self.config)
        finally:
            lazy.unload("sensorbox.device.http.cors")
        self.http.device = self  # the UI and the rarely used API routes (http/web_lazy.py, no resident routes)
    async def _serve(self):
        port = self.http.port = self.platform.http_port(self.config.get("http.port"))  # in effect (GET /api/config)
        host = getattr(self.platform, "http_host", "0.0.0.0")
        self.log.info("http", "serving on http://{}:{}/".format(host, port))
        try:
            await self.http.start_server(host=host, port=port)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            # Another server holds the port (a second simulated device on one host; never on a board): retrying
            # cannot help, so the app stops with exit code 69, which `sensorbox run` turns into advice.
            self.log.error("http", "port {} is in use: stopping".format(port))
            self.exit_code = 69
            self.stop()
            while True:
                await asyncio.sleep_ms(60000)

    async def _pipeline(self):
        if self.pipeline is None:
            from sensorbox.device.pipeline import Pipeline

            self.pipeline = Pipeline(self)
        await self.pipeline.run()

    async def _mqtt(self):
        # Imported only when enabled: the client and outbox cost no heap on a device that does not use MQTT.
        if not self.config.get("mqtt.enabled"):
            while True:
                await asyncio.sleep_ms(60000)
        if self.mqtt is None:
            from sensorbox.device.integrations.mqtt_sink import MqttSink

            self.mqtt = MqttSink(self)
        await self.mqtt.run()

    async def _webhook(self):
        # Imported only when enabled, like the MQTT sink.
        if not self.config.get("webhook.enabled"):
            while True:
                await asyncio.sleep_ms(60000)
        if self.webhook is None:
            from sensorbox.device.integrations.webhook import WebhookSink

            self.webhook = WebhookSink(self)
        await self.webhook.run()

    async def run(self):
        self._stop = asyncio.Event()
        self.log.info("app", "sensorbox {} starting on {} (id {})".format(
            __import__("sensorbox").__version__, self.platform.name, self.device_id))
        if self.auth.generated_password:
            # Shown once, on the console only: never logged to flash, never returned by the API.
            print("\n*** admin password (shown once): {} ***\n".format(self.auth.generated_password))
        # Load all long-lived code before any service starts allocating, so code and buffers do not end up
        # interleaved with short-lived objects (a fragmented heap fails large allocations with plenty free).
        self._make_http()
        asyncio.start_server  # noqa: B018 - imports asyncio's stream module now
        gc.collect()
        sup = self.supervisor
        sup.add("lag", self.lag.run)
        for name in self.sensors:
            sup.add(name, self.sensors[name].run, _SENSOR_KEYS[name])
        sup.add("soundmeter", self.soundmeter.run, ("sound.",))
        sup.add("pipeline", self._pipeline, ("ml.",))
        sup.add("store", lambda: self.store.run(self), ("store.", "capture."))
        sup.add("housekeeping", self._housekeeping)
        await self.platform.start_network(self.config, self.log)
        sup.add("http", self._serve, (), lambda: self.http.beat)  # restarted when its heartbeat stops
        sup.add("watch", lambda: sup.watch(self.platform))  # ...and the platform watchdog fed (supervisor.watch)
        sup.add("mqtt", self._mqtt, ("mqtt.", "device.name"))
        sup.add("webhook", self._webhook, ("webhook.",))
        gc.collect()
        gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
        await self._stop.wait()

    def stop(self):
        if self._stop is not None:
            self._stop.set()

    async def shutdown(self):
        self.log.info("app", "stopping")
        if self.http is not None and self.http.server is not None:  # None: it never listened
            self.http.shutdown()
        if self.mqtt is not None:
            await self.mqtt.stop()  # retained "offline" before the clean DISCONNECT
        await self.supervisor.stop()
        self.store.close()
        self.log.flush()


def main():
    # First of all, while the heap is whole, every module's names are interned (see lazy.warm): the holes its
    # loading and unloading leaves are filled by the allocations that follow. Not the plain-Python kernels (the
    # browser's), other boards' platform modules or sensor drivers this board does not use.
    from sensorbox.device import lazy

    plat = platform_mod.get()
    lazy.warm("sensorbox", ("sensorbox.shared.kernels_py", "sensorbox.device.platform.") +
              tuple(getattr(plat, "warm_skip", ())))
    gc.collect()
    device = Device(plat)
    try:
        asyncio.run(device.run())
    except KeyboardInterrupt:
        pass
    finally:
        asyncio.run(device.shutdown())
        asyncio.new_event_loop()
    if device.exit_code:
        raise SystemExit(device.exit_code)  # on a board: soft reset, then main.py again
