# CPU of the whole device app on the MicroPython unix port (run by bench/bench_cpu.py in place of the bundle's
# main.py, with the same environment). The device is the real app, unchanged. This script adds a "bench" task
# that takes two snapshots SENSORBOX_CPU_S seconds apart (after SENSORBOX_CPU_SETTLE s), each with the process's
# own CPU time (/proc/self/schedstat, ns; /proc/self/stat, clock ticks as a cross-check) and voluntary context
# switches (each one a time the process slept and was woken), the sensors' counters and the loop lag; writes
# them as JSON to SENSORBOX_CPU_OUT and stops the device. Two wake-ups in the whole window.
#
# With SENSORBOX_CPU_COUNTERS=1 it also counts, for the breakdown (these counters cost CPU themselves, so the
# budget figures come from runs without them):
# - every asyncio task's coroutine is wrapped so each step (one wake-up of the task) is counted and timed with
#   ticks_us; a task belongs to the supervised service that created it (the HTTP server's connection tasks to
#   "http"), tasks made outside any service to "app";
# - the simulated drivers' read() is timed on its own ("sim.accel", "sim.mic") and taken out of its sampler's
#   time: the simulator is not part of what a device would spend;
# - the store's file syncs (flush() of a segment: fsync on this port) are timed apart ("fsync"): a step waiting
#   for the disk is not using the CPU all that time (what the sync costs lands in the loop/kernel row).
# Nothing of this is in the bundle: the device itself carries no counters.
import json
import os
import time

import asyncio

from sensorbox.device import app

_ticks = time.ticks_us
_diff = time.ticks_diff

acc = {}  # name -> [steps, µs, of which in simulated drivers, of which waiting for fsync, longest step µs]
_naming = None
_cur = None


def _acc(name):
    a = acc.get(name)
    if a is None:
        a = acc[name] = [0, 0, 0, 0, 0]
    return a


class Step:
    """Stands in for a task's coroutine: forwards send/throw, counting and timing each step."""

    def __init__(self, coro, name):
        self.c = coro
        self.a = _acc(name)

    def send(self, v):
        global _cur
        _cur = self
        t = _ticks()
        try:
            return self.c.send(v)
        finally:
            dt = _diff(_ticks(), t)
            a = self.a
            a[0] += 1
            a[1] += dt
            if dt > a[4]:
                a[4] = dt
            _cur = None

    def throw(self, e):
        global _cur
        _cur = self
        t = _ticks()
        try:
            return self.c.throw(e)
        finally:
            dt = _diff(_ticks(), t)
            a = self.a
            a[0] += 1
            a[1] += dt
            if dt > a[4]:
                a[4] = dt
            _cur = None


class _File:
    """A store segment file whose flush (fsync) is timed and kept out of the step's CPU time."""

    def __init__(self, f, a):
        self.f = f
        self.a = a

    def write(self, b):
        return self.f.write(b)

    def flush(self):
        t = _ticks()
        try:
            return self.f.flush()
        finally:
            dt = _diff(_ticks(), t)
            self.a[0] += 1
            self.a[1] += dt
            if _cur is not None:
                _cur.a[3] += dt

    def close(self):
        return self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()


def _install_counters():
    global _naming
    import asyncio.core as core

    from sensorbox.device import supervisor
    from sensorbox.device.platform import unix
    from sensorbox.device.store import core as store_core

    create = core.create_task

    def create_task(coro):
        w = Step(coro, _naming or "app")
        if _naming is None and _cur is not None:
            w.a = _cur.a  # made by a task of a service (the HTTP server's connections): counted with it
        return create(w)

    core.create_task = create_task
    asyncio.create_task = create_task

    add = supervisor.Supervisor.add

    def named_add(self, name, factory, prefixes=()):
        global _naming
        _naming = name
        try:
            return add(self, name, factory, prefixes)
        finally:
            _naming = None

    supervisor.Supervisor.add = named_add

    make_sensor = unix.Platform.sensor

    def sensor(self, name, config, log):
        drv = make_sensor(self, name, config, log)
        if drv is None:
            return None
        read = drv.read
        sim = _acc("sim." + name)

        def timed_read(batch):
            t = _ticks()
            n = read(batch)
            dt = _diff(_ticks(), t)
            sim[0] += 1
            sim[1] += dt
            if _cur is not None:
                _cur.a[2] += dt
            return n

        drv.read = timed_read
        return drv

    unix.Platform.sensor = sensor
    fsync = _acc("fsync")

    def _open(path, mode="r"):
        f = open(path, mode)
        return _File(f, fsync) if "w" in mode or "a" in mode else f

    store_core.open = _open


def _proc():
    with open("/proc/self/schedstat") as f:
        ns = int(f.read().split()[0])
    with open("/proc/self/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    vcsw = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                vcsw = int(line.split()[1])
    return ns, int(st[11]) + int(st[12]), vcsw


def _snap(dev, start=False):
    if start:  # the window's maxima, not the boot's
        dev.lag.max_us = 0
        for a in acc.values():
            a[4] = 0
    ns, ticks, vcsw = _proc()
    return {"ms": time.ticks_ms(), "cpu_ns": ns, "cpu_ticks": ticks, "wakeups": vcsw,
            "tasks": {k: list(acc[k]) for k in acc},
            "sensors": {k: [dev.sensors[k].received, dev.sensors[k].dropped, dev.sensors[k].gaps]
                        for k in dev.sensors},
            "lag": dev.lag.status(), "sound_lost": dev.soundmeter.lost,
            "store_lost": dev.store.status()["lost_rows"], "restarts": dev.supervisor.total_restarts()}


async def _bench(dev):
    settle = int(os.getenv("SENSORBOX_CPU_SETTLE") or "10")
    dur = int(os.getenv("SENSORBOX_CPU_S") or "60")
    await asyncio.sleep_ms(settle * 1000)
    a = _snap(dev, True)
    await asyncio.sleep_ms(dur * 1000)
    b = _snap(dev)
    with open(os.getenv("SENSORBOX_CPU_OUT"), "w") as f:
        f.write(json.dumps({"a": a, "b": b}))
    dev.stop()


def main():
    if os.getenv("SENSORBOX_CPU_COUNTERS") == "1":
        _install_counters()
    run = app.Device.run

    async def bench_run(self):
        global _naming
        _naming = "bench"
        try:
            asyncio.create_task(_bench(self))
        finally:
            _naming = None
        await run(self)

    app.Device.run = bench_run
    app.main()


main()
