"""Start-up of the device app: the names interned first (``warm``), the parts built (``init``), the services
started (``start``). Loaded by ``app`` for each step and unloaded after it (``lazy``): code that runs once
takes no heap for the rest of the run. The modules of the parts are imported in the functions, not at the top,
so that unloading this module does not take them along (``lazy.unload`` drops what a load pulled in).
"""

import gc
import os
import sys

import asyncio

from sensorbox.device import lazy  # resident (app imports it): not taken along when this module goes

# Which config keys each sensor depends on: a change restarts its sampler.
_SENSOR_KEYS = {"accel": ("accel.", "sim.replay_"), "mic": ("mic.", "sim.mic_")}
_STATE = "sensorbox.device.bootstate"
_OTA = "sensorbox.device.ota"
_FACTORY = "sensorbox.device.factory"


def warm(plat):
    """Intern every module's names now, while the heap is whole (``warm_package``). Not what this device never
    loads: the plain-Python and float kernels (the browser's and host's), the config help texts (host and UI),
    ``trees_c`` (only with emlearn_trees installed), other boards' platform modules and sensor drivers; nor
    ``factory`` (a factory reset, then a restart)."""
    return warm_package("sensorbox", ("sensorbox.shared.kernels_py", "sensorbox.shared.kernels_float",
                                      "sensorbox.shared.config_docs", "sensorbox.device.trees_c",
                                      "sensorbox.device.platform.",
                                      # runs only just before a reset: what it interns goes with the reset
                                      "sensorbox.device.factory") + tuple(getattr(plat, "warm_skip", ())))


def warm_package(package, skip=()):
    """Load and unload once every module of ``package`` (a dotted name) not loaded yet, except ``skip``
    prefixes and what does not import here (another board's drivers): at boot, while the heap is whole.

    MicroPython interns every name a module uses, for good, in pools that double: on this port the ~1,260th name
    makes it allocate a ~15 KB pool in one piece (its MemoryError reads "allocating 1280 bytes": entries, not
    bytes). Left to chance, that happens when some cold module is first used on a fragmented heap, and from then
    on every import that brings a new name fails. Interning them all at boot makes it happen once, at a time it
    can. Returns (modules loaded, modules skipped)."""
    root = __import__(package)
    for part in package.split(".")[1:]:
        root = getattr(root, part)
    loaded = skipped = 0
    todo = [(root.__path__ if isinstance(root.__path__, str) else root.__path__[0], package)]
    while todo:
        path, pkg = todo.pop()
        for e in os.ilistdir(path):
            n = e[0]
            if e[1] == 0x4000:
                todo.append((path + "/" + n, pkg + "." + n))
                continue
            if not (n.endswith(".mpy") or n.endswith(".py")) or n.startswith("__init__."):
                continue
            name = pkg + "." + n[:n.rfind(".")]
            if name in sys.modules or any(name.startswith(p) for p in skip):
                continue
            try:
                lazy.load(name)
                loaded += 1
            except Exception:  # ImportError, SyntaxError (no viper here), another platform's module
                skipped += 1
            lazy.unload(name)
            gc.collect()
    return loaded, skipped


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


def init(d, echo_log):
    """Build the parts of device ``d`` (``d.platform`` set): log, sensors and their rings, config, store, ..."""
    from sensorbox.device.log import Log
    from sensorbox.device.sensors.sampler import Sensor
    from sensorbox.device.soundmeter import SoundMeter
    from sensorbox.device.store.core import Store
    # The model evaluator's viper kernel, imported once for good: a running model uses it anyway, and a module
    # with native code imported again (by models.py, loaded per request) leaks every time (its native code and
    # BSS are kept for good: IRAM on an ESP32, a tracked root pointer per load in the GC heap).
    from sensorbox.device import trees_fast  # noqa: F401

    from sensorbox.device.guard import Guard

    data = d.platform.data_dir
    _makedirs(data)
    try:
        os.stat(data + "/erase-data")  # a factory reset asked for the stored data to go too (factory.py)
        try:
            lazy.load(_FACTORY).wipe(data, True)
            os.remove(data + "/erase-data")
        finally:
            lazy.unload(_FACTORY)
    except OSError:
        pass
    d.log = Log(d.platform.epoch_ms, data + "/log.txt", echo=echo_log)
    # The boot counter first of all (bootstate.py): after 3 boots that did not stay healthy, safe mode.
    try:
        rec, safe, err = lazy.load(_STATE).begin(data)
    finally:
        lazy.unload(_STATE)
    if err:
        d.log.warning("boot", err)
    d.boot = {"safe_mode": safe, "unhealthy_boots": rec["boots"] - 1, "reason": rec.get("reason"),
              "trace": rec.get("trace"), "at": rec.get("at")}
    d.guard = Guard(d, safe)
    p0 = sys.path[0] if sys.path else ""
    if p0.endswith("/lib") and "/app/" in p0:  # an app from an update slot (main.py): its own UI and default model
        d.platform.www_dir = p0[:-4] + "/www"
    d.sensors = {}
    d.store = d.soundmeter = None
    if safe:  # network, UI and updates only: no sensors, store, analysis or integrations
        d.log.error("boot", "safe mode after {} unhealthy boots; last: {}".format(rec["boots"] - 1, rec.get("reason")))
        _init_core(d, data)
        return
    # Rings first, while the heap is empty: 5 s of accelerometer at up to 100 Hz, 64 ms of sound at 16 kHz
    # (its reader runs every few tens of ms). They are never reallocated.
    d.sensors["accel"] = Sensor("accel", d._driver_factory("accel"), d.log, 3, 500)
    # 1024 = config_schema.MIC_RING_FRAMES, which bounds mic.poll_ms (the schema is not loaded here)
    d.sensors["mic"] = Sensor("mic", d._driver_factory("mic"), d.log, 1, 1024)
    _init_core(d, data)
    # The store: first subscriber of the analysis results (see store/core.py for the value shapes).
    d.store = Store(data + "/store", d.log, d.platform.epoch_ms, d.platform.flash_stats)
    d.store.configure(d.config)
    d.store.open()
    floor(d.platform.clock(), d.store, d.log)
    for topic in ("features", "predictions", "soundlevel", "events"):
        d.bus.subscribe(topic, d.store.on_bus)
    d.soundmeter = SoundMeter(d)  # sound levels from the mic ring (sound.* config)


def floor(clock, store, log):
    """Time never goes back, across reboots too: a clock behind the newest row stored (an RTC that restarted in
    2000, a host clock set back) goes on from just after it (``clock.floor``). Returns how far it moved."""
    last = 0
    for r in store.res:
        for t in (r.last_t, r.newest):
            if t is not None and t > last:
                last = t
    moved = clock.floor(last)
    if moved:
        log.warning("time", "the clock was {} ms behind the newest stored row: going on from it{}".format(
            moved, "" if clock.known else " until NTP sets the time"))
    return moved


def _init_core(d, data):
    # what a device in safe mode has too: config, id, supervisor, bus, lag monitor, auth, health
    from sensorbox.device.auth import Auth
    from sensorbox.device.bus import Bus
    from sensorbox.device.config import Config
    from sensorbox.device.health import Health
    from sensorbox.device.supervisor import LagMonitor, Supervisor

    d.config = Config(data + "/config.json", d.log)
    pin = d.config.get("board.reset_pin")
    if pin >= 0:  # the reset button held at power-on: factory settings (factory.py), then a first boot
        try:
            import machine

            f = lazy.load(_FACTORY)
            if f.button_held(pin, machine, log=d.log):
                d.log.warning("boot", "factory reset by the button: deleted {}".format(", ".join(f.wipe(data))))
                d.config = Config(data + "/config.json", d.log)
        finally:
            f = None
            lazy.unload(_FACTORY)
    d.log.set_level(d.config.get("log.level"))
    d.log.file_bytes = d.config.get("log.file_kb") * 1024
    d.device_id = d.platform.unique_id()
    d.supervisor = Supervisor(d.log)
    d.bus = Bus(d.log)
    d.lag = LagMonitor()
    d.auth = Auth(data + "/auth.json", d.log, getattr(d.platform, "admin_password", None))
    d.health = Health(d)
    d.config.listen(d.supervisor.config_changed)
    d.config.listen(d._on_config)
    try:  # which app runs (d.app); an update on trial must be healthy by the deadline (guard.py) or goes back
        d.guard.deadline = lazy.load(_OTA).status(d)
    finally:
        lazy.unload(_OTA)


async def start(d):
    """Start the services of device ``d``."""
    d.log.info("app", "sensorbox {} starting on {} (id {})".format(
        __import__("sensorbox").__version__, d.platform.name, d.device_id))
    if d.auth.generated_password:
        # Shown once, on the console only: never logged to flash, never returned by the API.
        print("\n*** admin password (shown once): {} ***\n".format(d.auth.generated_password))
    # Load all long-lived code before any service starts allocating, so code and buffers do not end up
    # interleaved with short-lived objects (a fragmented heap fails large allocations with plenty free).
    from sensorbox.device.http.server import make_app

    d.http = make_app(d.auth, d.log)
    d.http.device = d  # no route is registered: each request loads the module that answers it
    asyncio.start_server  # noqa: B018 - imports asyncio's stream module now
    gc.collect()
    sup = d.supervisor
    sup.add("lag", d.lag.run)
    safe = d.boot["safe_mode"]
    if safe:
        print("\n*** SAFE MODE after {} unhealthy boots: {} ***\n".format(d.boot["unhealthy_boots"],
                                                                         d.boot["reason"]))
    else:
        for name in d.sensors:
            sup.add(name, d.sensors[name].run, _SENSOR_KEYS[name])
        sup.add("soundmeter", d.soundmeter.run, ("sound.",))
        sup.add("pipeline", d._pipeline, ("ml.",))
        sup.add("store", d._store, ("store.",))  # (a lambda here would keep this module's code alive)
    sup.add("housekeeping", d._housekeeping)
    await d.platform.start_network(d)
    sup.add("http", d._serve)
    if not safe:
        d._integrations(())  # MQTT and webhooks, if enabled
    gc.collect()
    gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
