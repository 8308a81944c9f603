"""The device application: config, log, sensors, services and the HTTP API on one event loop.

    import sensorbox.device.app as app
    app.main()            # what main.py does on the device and on the unix port

Services (each supervised, see ``supervisor``): one sampler per sensor, ``soundmeter``, ``pipeline``,
``store``, ``housekeeping`` (log to flash, heap figures, the loop-lag probe), ``http`` (the API), and
``mqtt`` and ``webhook`` once enabled. Building the parts and starting the services is in ``boot``, loaded
only for that; this module keeps what runs for as long as the device does.
"""

import errno
import gc
import time

import asyncio

from sensorbox.device import lazy
from sensorbox.device import platform as _platform
from sensorbox.device.supervisor import grid_ms

_BOOT = "sensorbox.device.boot"
_STATE = "sensorbox.device.bootstate"


class Device:
    _exit = 0  # set when the app stops itself; main() exits with it (69: the HTTP port is in use)

    def __init__(self, platform=None, echo_log=True):
        self.platform = platform or _platform.get()
        from sensorbox.device.analysis.pipeline import ModelSlot  # (resident: the pipeline's module)

        self.ml = ModelSlot()  # the activity model: the one in use, why there is none, who loads one
        self.pipeline = None  # made when its service first starts (after the HTTP server has its RAM)
        self.http = None
        self.mqtt = None  # the MQTT sink (integrations/mqtt_sink.py), made when mqtt.enabled is first on
        self.webhook = None  # the webhook sink (integrations/webhook.py), made when webhook.enabled is first on
        self._stop = None
        lazy.call(_BOOT, "init", self, echo_log)  # log, sensors, config, store, auth, ... (boot.py)

    def _driver_factory(self, name):
        def make():
            if not self.config.get(name + ".enabled"):
                return None
            drv = self.platform.sensor(name, self.config, self.log)
            if drv is None:
                self.log.warning(name, "no {} on this board".format(name))
            return drv

        return make

    def _on_config(self, changed, services):
        # ``services``: the ones the change restarts (the config schema names them: config_schema.restarts)
        self.supervisor.restart(services)
        if "log.level" in changed:
            self.log.set_level(self.config.get("log.level"))
        if "log.file_kb" in changed:
            self.log.file_bytes = self.config.get("log.file_kb") * 1024
        self._integrations(changed)

    def _integrations(self, changed):
        # MQTT and webhooks get a service once enabled (at boot, or when a change enables them): a device that
        # does not use them carries no task for them.
        sup = self.supervisor
        if self.store is None:  # safe mode: no integrations
            return
        for name, fn in (("mqtt", self._mqtt), ("webhook", self._webhook)):
            if sup.get(name) is None and self.config.get(name + ".enabled") and (
                    not changed or name + ".enabled" in changed):
                sup.add(name, fn)

    async def _housekeeping(self):
        # Also the loop-lag monitor's 1 s probe (``LagMonitor.run``'s turn, without a task of its own).
        n = 0
        lag = self.lag
        while True:
            ms = grid_ms(1000)  # with the other 1 s timers: no wake-up of its own
            t0 = time.ticks_us()
            await asyncio.sleep_ms(ms)
            lag.woke(t0, ms)
            self.health.sample_heap(True)
            n += 1
            if n % 2 == 0 and self.log.pending():
                self.log.flush()

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
            self._exit = 69
            self.stop()
            while True:
                await asyncio.sleep_ms(60000)

    async def _store(self):
        await self.store.run(self)

    def _beat(self):
        return self.http.beat  # the HTTP server's heartbeat (server.serve): the supervisor restarts it when it stops

    async def _pipeline(self):
        if self.pipeline is None:
            from sensorbox.device.analysis.pipeline import Pipeline

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
        try:
            await lazy.load(_BOOT).start(self)  # the HTTP server and every service (boot.py)
        finally:
            lazy.unload(_BOOT)
        await self._stop.wait()

    def stop(self):
        if self._stop is not None:
            self._stop.set()

    async def shutdown(self):
        # (bootstate.py: the end of a run, like its start, is rare code)
        await lazy.call(_STATE, "shutdown", self)


def main():
    plat = _platform.get()
    device = None
    code = 75  # (a crash: said in boot.json for the next boot, then a restart)
    try:
        lazy.call(_BOOT, "warm", plat)  # first of all, while the heap is whole
        gc.collect()
        device = Device(plat)
        asyncio.run(device.run())
        code = device._exit
    except KeyboardInterrupt:
        code = 0
    except Exception as e:
        lazy.call(_STATE, "crashed", e)
    finally:
        try:
            if device is not None:
                asyncio.run(device.shutdown())
            asyncio.new_event_loop()
        finally:  # (here, so that a crash on the crash's path or in the shutdown restarts too)
            if code:
                raise SystemExit(code)  # on a board: soft reset, then main.py again; `sensorbox run` starts it again
