# The device app's heap, part by part (run by bench/bench_heap.py on the MicroPython unix port). Prints lines
# "<kind> <name> <bytes> [<names>]" that the host turns into the per-part table.
#
#   mp_heap.py code LISTFILE [IMAGE]  a fresh interpreter imports the modules named in LISTFILE ("r <module>" resident,
#                              in dependency order, then "c <module>" cold ones, each loaded and unloaded): the heap
#                              each import keeps (code: bytecode, functions, constants) and the names it interns
#   mp_heap.py app [IMAGE]     the real app booted as main() does, in steps (names, boot objects, running), then
#                              driven from outside until the file $SENSORBOX_DATA/.probe-stop appears, then stopped
#                              and taken apart service by service, each part's objects measured as what freeing it
#                              gives back. IMAGE: a ROMFS image of the bundle, read into one bytearray first and
#                              mounted at /rom (lib/ first on sys.path); its bytes are left out of every figure,
#                              as on a board where the image sits in flash. With $SENSORBOX_HEAPMAP the GC's
#                              block map is printed once the app runs (micropython.mem_info(1)): the resident heap
#                              by kind of object (bench_heap.heap_map).
import gc
import os
import sys
import time

import micropython

_image = 0  # bytes of the ROMFS image held in the heap (subtracted from every figure)


def mem():
    gc.collect()
    gc.collect()
    return gc.mem_alloc() - _image


def names():
    # (names interned, bytes of the pools and strings): qstr_info prints them; the host parses the line
    micropython.qstr_info()


def mount(image):
    # the ROMFS image read into one bytearray (left out of every figure: flash on a board), mounted at /rom
    global _image
    import vfs

    buf = bytearray(os.stat(image)[6])
    with open(image, "rb") as f:
        f.readinto(buf)
    gc.collect()
    _image = gc.mem_alloc()  # the image and the little allocated before it
    vfs.mount(vfs.VfsRom(buf), "/rom")
    sys.path.insert(0, "/rom/lib")
    return buf


def code(listfile, image=None):
    img = mount(image) if image else None  # noqa: F841 - kept alive
    rows = [ln.split() for ln in open(listfile).read().split("\n") if ln.strip()]
    if os.getenv("MP_HEAP_PREWARM"):  # every name interned first (as boot.warm does): code without name pools
        before = set(sys.modules)
        for kind, name in rows:
            try:
                __import__(name)
            except Exception:
                pass
        for m in [m for m in sys.modules if m not in before]:
            sys.modules.pop(m)
            parent, _, child = m.rpartition(".")
            if parent in sys.modules and child in sys.modules[parent].__dict__:
                delattr(sys.modules[parent], child)
    print("mark start", mem())
    names()
    for kind, name in rows:
        before = mem()
        if kind == "r":
            __import__(name)
            print("code", name, mem() - before)
        else:
            try:
                from sensorbox.device import lazy  # resident by now

                lazy.load(name)
                after = mem()
                lazy.unload(name)
                print("cold", name, after - before)
            except Exception as e:  # another board's module
                print("skip", name, type(e).__name__)
                continue
        names()


def app(image=None):
    img = mount(image) if image else None  # noqa: F841 - kept alive
    import asyncio

    print("mark interpreter", mem())
    import sensorbox.device.app as app_mod
    from sensorbox.device import lazy
    from sensorbox.device import platform as platform_mod

    print("mark imports", mem())
    names()
    plat = platform_mod.get()
    try:
        lazy.load("sensorbox.device.boot").warm(plat)  # as app.main does
    finally:
        lazy.unload("sensorbox.device.boot")
    print("mark warm", mem())
    names()
    dev = app_mod.Device(plat, echo_log=False)
    print("mark device", mem())
    stop_file = plat.data_dir + "/.probe-stop"

    async def probe():
        await asyncio.sleep_ms(6000)
        print("mark running", mem())
        if os.getenv("SENSORBOX_HEAPMAP"):  # the GC's block map (one letter a block: its object's kind) at rest
            gc.collect()
            print("map start")
            micropython.mem_info(1)
            print("map end")
        print("ready", plat.http_port(0))
        peak = 0
        trace = os.getenv("SENSORBOX_TRACE")  # each sample printed too ("live <ms> <bytes>"): peaks by load
        while True:  # the live heap every 100 ms while the load runs (housekeeping's every 5 s misses peaks)
            try:
                os.stat(stop_file)
                break
            except OSError:
                await asyncio.sleep_ms(100)
                m = mem()
                peak = max(peak, m)
                if trace:
                    print("live", time.ticks_ms(), m)
        print("peak", peak)
        dev.stop()

    async def main():
        asyncio.create_task(probe())
        await dev.run()

    asyncio.run(main())
    print("mark stopped", mem())
    asyncio.run(dev.shutdown())
    asyncio.new_event_loop()
    print("mark shutdown", mem())
    names()
    print("modules", ",".join(sorted(sys.modules)))
    # Take it apart: first the links between parts (listeners, services, subscriptions), then part by part.
    dev.config._listeners = []
    for s in dev.supervisor.services:
        s.factory = None
        s.task = None
    dev.bus._subs = {}
    parts = (("model", dev, "model"), ("pipeline", dev, "pipeline"), ("mqtt", dev, "mqtt"),
             ("webhook", dev, "webhook"), ("soundmeter", dev, "soundmeter"), ("http", dev, "http"),
             ("supervisor", dev, "supervisor"), ("health", dev, "health"), ("auth", dev, "auth"),
             ("store", dev, "store"), ("bus", dev, "bus"), ("lag", dev, "lag"), ("config", dev, "config"),
             ("sensor.accel", dev.sensors, "accel"), ("sensor.mic", dev.sensors, "mic"), ("log", dev, "log"))
    for label, obj, key in parts:
        before = mem()
        if isinstance(obj, dict):
            obj.pop(key, None)
        elif hasattr(obj, key):
            setattr(obj, key, None)
        print("obj", label, before - mem())
    before = mem()
    dev = None
    print("obj device", before - mem())
    print("mark end", mem())


def main():
    if sys.argv[1] == "code":
        code(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        app(sys.argv[2] if len(sys.argv) > 2 else None)


main()
