# CPU of the whole device app on the MicroPython unix port (run by bench/bench_cpu.py in place of the bundle's
# main.py, with the same environment). The device is the real app, unchanged. This script adds a "bench" task
# that takes two snapshots SENSORBOX_CPU_S seconds apart (after SENSORBOX_CPU_SETTLE s), each with the process's
# own CPU time (/proc/self/schedstat, ns; /proc/self/stat, clock ticks as a cross-check) and voluntary context
# switches (each one a time the process slept and was woken), the sensors' counters and the loop lag; writes
# them as JSON to SENSORBOX_CPU_OUT and stops the device. Two wake-ups in the whole window.
#
# With SENSORBOX_CPU_COUNTERS=1 it also counts, for the breakdown (these counters cost CPU themselves, so the
# budget figures come from runs without them):
# - every asyncio task's coroutine is wrapped so each step (one wake-up of the task) is counted and its CPU time
#   taken from the process's own CPU clock (``_cpu_ns``: a step preempted by another process on this shared
#   machine, or waiting for the disk, is charged only for the time it ran); a task belongs to the supervised
#   service that created it (the HTTP server's connection tasks to "http"), tasks made outside any service to
#   "app";
# - the simulated drivers' read() is measured on its own ("sim.accel", "sim.mic") and taken out of its sampler's
#   time: the simulator is not part of what a device would spend;
# - the store's file syncs (flush() of a segment: fsync on this port) are counted with their wall time ("fsync");
# - the event loop's sleeps (each one ends in a wake-up of the device) are counted ("loop.sleeps").
# Nothing of this is in the bundle: the device itself carries no counters.
import json
import os
import time

import asyncio

from sensorbox.device import app
from sensorbox.device import status as status_doc

_ticks = time.ticks_us
_diff = time.ticks_diff

acc = {}  # name -> [steps, CPU µs, of which in simulated drivers, (unused), longest step µs]
_naming = None
_cur = None


_stat = _sched = None
_sbuf = bytearray(64)
_stbuf = bytearray(1024)
_bias = 0


def _cpu_ns():
    """This process's CPU time in ns, up to date: reading /proc/self/stat makes the kernel account the running
    slice (thread_group_cputime), then /proc/self/schedstat's first field is exact (~5 µs per call here)."""
    _stat.seek(0)
    _stat.readinto(_stbuf)
    _sched.seek(0)
    _sched.readinto(_sbuf)
    b = _sbuf
    i = 0
    v = 0
    while b[i] > 32:
        v = v * 10 + b[i] - 48
        i += 1
    return v


def _calibrate():
    # What two readings with nothing between measure: the part of a reading's own cost that lands inside an
    # interval. Taken off every step (the median of 301 pairs).
    global _bias
    d = []
    for _ in range(301):
        a = _cpu_ns()
        d.append(_cpu_ns() - a)
    d.sort()
    _bias = d[150]


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
        c = _cpu_ns()
        try:
            return self.c.send(v)
        finally:
            self._count(c)

    def throw(self, e):
        global _cur
        _cur = self
        c = _cpu_ns()
        try:
            return self.c.throw(e)
        finally:
            self._count(c)

    def _count(self, c):
        global _cur
        dt = (_cpu_ns() - c - _bias) // 1000  # CPU time: a preempted step or one waiting for the disk is not
        a = self.a  # charged for the time it did not run
        a[0] += 1
        a[1] += dt
        if dt > a[4]:
            a[4] = dt
        _cur = None


class _File:
    """A store segment file whose flush (fsync on this port) is counted, with its wall time."""

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
            self.a[0] += 1
            self.a[1] += _diff(_ticks(), t)

    def close(self):
        return self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()


def _install_counters():
    global _stat, _sched
    import asyncio.core as core

    from sensorbox.device import supervisor
    from sensorbox.device.platform import unix
    from sensorbox.device.store import core as store_core

    _stat = open("/proc/self/stat", "rb")
    _sched = open("/proc/self/schedstat", "rb")
    _calibrate()
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
            c = _cpu_ns()
            n = read(batch)
            dt = (_cpu_ns() - c - _bias) // 1000
            sim[0] += 1
            sim[1] += dt
            if _cur is not None:
                _cur.a[2] += dt
            return n

        drv.read = timed_read
        return drv

    unix.Platform.sensor = sensor
    # The event loop's sleeps: each call that may block (a timeout > 0) ends in a wake-up of the device.
    ioq = core._io_queue
    wait_io = ioq.wait_io_event
    sleeps = _acc("loop.sleeps")

    def wait_io_event(dt):
        if dt != 0:
            sleeps[0] += 1
        return wait_io(dt)

    ioq.wait_io_event = wait_io_event
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
            "lag": status_doc.lag_status(dev.lag), "sound_lost": dev.soundmeter.lost,
            "store_lost": dev.store.status()["lost_rows"], "restarts": status_doc.restarts(dev.supervisor)}


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


def _reference():
    # SENSORBOX_CPU_REF=1: instead of the app, the machine's speed during the round, for bench_cpu.py to compare
    # rounds run at different times (this machine is shared: the same work can take 1.5x the CPU time from one
    # minute to the next). The CPU time of one analysis window's features (shared/features.py, the device's own
    # code) on the recording's first 128 frames, every 100 ms through the same window as the devices (~0.3 % of a
    # core); the median goes to SENSORBOX_CPU_OUT.
    global _stat, _sched
    import array
    import select

    from sensorbox.shared import features, npy

    _stat = open("/proc/self/stat", "rb")
    _sched = open("/proc/self/schedstat", "rb")
    _calibrate()
    ex = features.Extractor(3, 128)
    win = array.array("h", bytes(2 * 3 * 128))
    out = array.array("h", bytes(2 * ex.n_features))
    with open(os.getenv("SENSORBOX_REPLAY"), "rb") as f:
        _, shape, off = npy.parse_header(f.read(128))
        f.seek(off)
        row = array.array("h", bytes(2 * shape[1]))
        for i in range(128):
            f.readinto(row)
            for c in range(3):
                win[3 * i + c] = row[c]
    wait = select.poll()  # a poll with a timeout sleeps in one piece (time.sleep_ms wakes every ms here)
    wait.poll(int(os.getenv("SENSORBOX_CPU_SETTLE") or "10") * 1000)
    end = time.ticks_add(time.ticks_ms(), int(os.getenv("SENSORBOX_CPU_S") or "60") * 1000)
    d = []
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        c = _cpu_ns()
        ex.extract(win, out)
        d.append(_cpu_ns() - c - _bias)
        wait.poll(100)
    d.sort()
    with open(os.getenv("SENSORBOX_CPU_OUT"), "w") as f:
        f.write(json.dumps({"ref_ms": d[len(d) // 2] / 1e6, "n": len(d)}))


def main():
    if os.getenv("SENSORBOX_CPU_REF") == "1":
        return _reference()
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
