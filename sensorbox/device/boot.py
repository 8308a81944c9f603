"""Start-up of the device app: the names interned first (``warm``), the parts built (``init``), the services
started (``start``). Loaded by ``app`` for each step and unloaded after it (``lazy``): code that runs once
takes no heap for the rest of the run. The modules of the parts are imported in the functions, not at the top,
so that unloading this module does not take them along (``lazy.unload`` drops what a load pulled in).
"""

import gc
import os
import sys
import time

import asyncio

from sensorbox.device import lazy  # resident (app imports it): not taken along when this module goes

_STATE = "sensorbox.device.bootstate"


# What ``warm`` leaves out (prefixes; a board adds its own ``warm_skip``): what this device never loads: the
# plain-Python and float kernels (the browser's and host's), the config help texts (host and UI), ``kernels_emlearn``
# (only with emlearn_trees / emlearn_fft / emlearn_iir installed, then imported for good: loaded now, their native
# code would stay in RAM for nothing) and ``kernels_sound`` (the sound classifier's, below): every ``kernels_*``
# (the viper kernels are imported by ``kernels``, which is warmed); other boards' platform modules, the browser's
# re-analysis (in the unix bundle only, for the tests), and the k-nearest-neighbour evaluator and its loader (only a
# knn or anomaly model loads them: ~30 names, interned then, not for good on every device). The sound classifier's
# modules too: loaded only while sound.classify is on (soundmeter), their names are interned then, into the pool
# warming already grew, not for good on every device; and so the store's event capture and SD card (loaded only while ``capture.*`` /
# ``board.sdcard`` have them on: ~45 names). And the plain codec and its reference encoder (a port with viper
# stores and reads with ``store/core``).
WARM_SKIP = ("sensorbox.shared.kernels_", "sensorbox.shared.config_docs", "sensorbox.device.platform.",
             "sensorbox.shared.neighbors", "sensorbox.shared.analysis", "sensorbox.device.analysis.soundclass",
             "sensorbox.shared.soundfeatures", "sensorbox.shared.wav",
             "sensorbox.device.store.capture", "sensorbox.device.store.sd", "sensorbox.shared.codec",
             "sensorbox.device.factory",  # runs only just before a reset: what it interns goes with the reset
             # updates: loaded to install an update or its key (a restart follows); what a refused upload
             # interns stays (~20 names: NAME_BUDGET's slack is for that)
             "sensorbox.device.ota")


def warm(plat):
    """Intern every module's names now, while the heap is whole (``warm_package``), but ``WARM_SKIP`` and the
    board's sensor drivers it does not use."""
    return warm_package("sensorbox", WARM_SKIP + tuple(getattr(plat, "warm_skip", ())))


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
    from sensorbox.device.analysis.soundmeter import SoundMeter
    from sensorbox.device.store.core import Store
    # The model evaluator's viper kernel, imported once for good: a running model uses it anyway, and a module
    # with native code imported again (by models.py, loaded per request) leaks every time (its native code and
    # BSS are kept for good: IRAM on an ESP32, a tracked root pointer per load in the GC heap).
    from sensorbox.device.analysis import trees  # noqa: F401
    from sensorbox.shared import kernels

    kernels.lazy = lazy  # dsp_setup loaded through lazy (its reserve): shared code imports nothing of the device

    data = d.platform.data_dir
    _makedirs(data)
    d.log = Log(d.platform.epoch_ms, data + "/log.txt", echo=echo_log)
    # The boot counter first of all (bootstate.py): after 3 boots that did not stay healthy, safe mode; and which
    # app runs (an update on trial must be healthy by a deadline or goes back).
    safe_mode = lazy.call(_STATE, "init", d)
    d.sensors = {}
    d.store = d.soundmeter = None
    _config(d, data)
    if safe_mode:  # network, UI and updates only: no sensors, store, analysis or integrations
        _init_core(d, data, safe_mode)
        return
    # Rings next, while the heap is empty (the config's file and schema are gone again): 5 s of accelerometer at up
    # to 100 Hz, 32 ms of sound at 16 kHz (two of the chunks the sound meter reads the microphone's FIFO in). They
    # are never reallocated: ``accel.gyro`` (6 channels: the gyroscope too) applies at the next start.
    gc.collect()
    d.sensors["accel"] = Sensor("accel", d._driver_factory("accel"), d.log, 6 if d.config.get("accel.gyro") else 3,
                                500)
    # 512 = config_schema.MIC_RING_FRAMES (the schema is not loaded here)
    d.sensors["mic"] = Sensor("mic", d._driver_factory("mic"), d.log, 1, 512)
    _init_core(d, data, safe_mode)
    # The store: first subscriber of the analysis results (see store/core.py for the value shapes).
    d.store = Store(data + "/store", d.log, d.platform.epoch_ms, d.platform.flash_stats)
    if d.sensors["accel"].ring.channels == 6:  # accel.gyro: the frames' gyroscope columns too (the drivers' names)
        d.store.accel.cols = ("x", "y", "z", "gx", "gy", "gz")
        d.store.accel.ncols = 6
    d.store.configure(d.config)
    d.store.open()
    # time never goes back, across reboots too (store/recover.floor)
    lazy.call("sensorbox.device.store.recover", "floor", d.platform.clock(), d.store, d.log)
    for topic in ("features", "predictions", "soundlevel", "events"):
        d.bus.subscribe(topic, d.store.on_bus)
    d.soundmeter = SoundMeter(d)  # sound levels from the mic ring (sound.* config)


def _config(d, data):
    from sensorbox.device.config import Config

    d.config = Config(data + "/config.json", d.log)
    if d.config.get("board.reset_pin") >= 0:  # the reset button held at power-on: factory settings, a first boot
        if lazy.call("sensorbox.device.factory", "boot", d):
            d.config = Config(data + "/config.json", d.log)


def _init_core(d, data, safe_mode):
    # what a device in safe mode has too (its config read first: _config): id, supervisor (the health guard), bus,
    # lag monitor, auth, health
    from sensorbox.device.auth import Auth
    from sensorbox.device.log import Bus
    from sensorbox.device.supervisor import Health, LagMonitor, Supervisor

    d.config.device = d
    d.log.set_level(d.config.get("log.level"))
    d.log.file_bytes = d.config.get("log.file_kb") * 1024
    d.device_id = d.platform.unique_id(d.log)
    sup = d.supervisor = Supervisor(d.log, d)  # (and the health guard:)
    if safe_mode:
        sup.safe_mode = True
        sup._crit = ("http",)
    if getattr(d, "app", None) and d.app["trial"]:  # an update on trial: healthy within 10 minutes, else it goes back
        sup._deadline = time.ticks_add(time.ticks_ms(), sup.ms[3])
    d.bus = Bus(d.log)
    d.lag = LagMonitor()  # its samples: the samplers' and the sound meter's wake-ups, and housekeeping's 1 s turn
    for name in d.sensors:
        d.sensors[name].lag = d.lag
    d.auth = Auth(data + "/auth.json", d.log, getattr(d.platform, "admin_password", None))
    # files read later (per request, by a service): what is wrong with them is set aside and said now
    lazy.call("sensorbox.device.files", "check_boot", d)
    d.health = Health(d)
    d.config.listen(d._on_config)


async def start(d):
    """Start the services of device ``d``."""
    d.log.info("app", "sensorbox {} starting on {} (id {})".format(
        __import__("sensorbox").__version__, d.platform.name, d.device_id))
    if d.auth.generated_password:
        # Shown once, on the console only: never logged to flash, never returned by the API.
        print("\n*** admin password (shown once): {} ***\n".format(d.auth.generated_password))
    # Load all long-lived code before any service starts allocating, so code and buffers do not end up
    # interleaved with short-lived objects (a fragmented heap fails large allocations with plenty free).
    from sensorbox.device.analysis import pipeline  # noqa: F401 - resident (the pipeline service's), models imports it

    # the model's arrays first (the pipeline's first run fills them): see models.spare
    lazy.call("sensorbox.device.analysis.models", "spare", d)
    from sensorbox.device.http.server import make_app

    d.http = make_app(d.auth, d.log)
    d.http.device = d  # no route is registered: each request loads the module that answers it
    # the UI's sessions that POST /api/restart saved: taken now, at boot, or never (http/authz.py sessions)
    lazy.call("sensorbox.device.http.authz", "sessions", d.auth, False, True)  # (save=False, boot=True)
    asyncio.start_server  # noqa: B018 - imports asyncio's stream module now
    gc.collect()
    sup = d.supervisor
    safe = sup.safe_mode
    if safe:
        print("\n*** SAFE MODE after {} unhealthy boots: {} ***\n".format(d.boot["count"], d.boot.get("reason")))
    else:
        # (each named as the config schema names it: a change of its keys restarts it, config_schema.restarts)
        for name in d.sensors:
            sup.add(name, d.sensors[name].run)
        sup.add("soundmeter", d.soundmeter.run)
        sup.add("pipeline", d._pipeline)
        sup.add("store", d._store)  # (a lambda here would keep this module's code alive)
    sup.add("housekeeping", d._housekeeping)
    await d.platform.start_network(d)
    sup.add("http", d._serve, d._beat)  # restarted when its heartbeat stops
    sup.add("watch", sup.watch)  # ...and the health guard (supervisor.tick), the watchdog's one feeder
    if not safe:
        d._integrations(())  # MQTT and webhooks, if enabled
    gc.collect()
    gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
