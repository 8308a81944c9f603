"""Supervised services: a failing service is logged, counted and restarted with backoff; the rest keep running."""

import asyncio

from devtest import quiet_log, until
from sensorbox.device import supervisor as sv


async def test_failing_service_restarts_and_others_continue():
    log = quiet_log()
    sup = sv.Supervisor(log)
    ticks = [0]
    runs = [0]

    async def steady():
        while True:
            ticks[0] += 1
            await asyncio.sleep_ms(1)

    async def flaky():
        runs[0] += 1
        await asyncio.sleep_ms(2)
        raise ValueError("sensor bus glitch")

    sup.add("steady", steady)
    svc = sup.add("flaky", flaky)
    await until(lambda: svc.restarts >= 3, 5000)
    assert runs[0] >= 3
    assert sup.total_restarts() >= 3
    assert "ValueError: sensor bus glitch" in svc.last_error
    before = ticks[0]
    await asyncio.sleep_ms(30)
    assert ticks[0] > before, "the healthy service stopped"
    errors = [e for e in log.entries() if e["level"] == "error"]
    assert errors and "Traceback" in errors[0]["msg"] and "sensor bus glitch" in errors[0]["msg"]
    await sup.stop()


async def test_backoff_doubles():
    import time

    sup = sv.Supervisor(quiet_log())
    starts = []

    async def fails():
        starts.append(time.ticks_ms())
        raise RuntimeError("x")

    # the waits the supervisor asks for (how long they take depends on the machine's load; the polling below
    # sleeps 5 ms at a time)
    waits = []
    real = asyncio.sleep_ms

    def sleep_ms(ms):
        if ms >= 50:
            waits.append(ms)
        return real(ms)

    asyncio.sleep_ms = sleep_ms
    try:
        sup.add("f", fails)
        await until(lambda: len(starts) >= 4, 5000)
        await sup.stop()
    finally:
        asyncio.sleep_ms = real
    assert waits[:3] == [sv.BACKOFF_MIN_MS, 2 * sv.BACKOFF_MIN_MS, 4 * sv.BACKOFF_MIN_MS], waits  # 100, 200, 400 ms
    gaps = [time.ticks_diff(starts[i + 1], starts[i]) for i in range(3)]
    assert all(g >= w for g, w in zip(gaps, waits)), (gaps, waits)  # ...and each is waited


async def test_config_change_restarts_dependants_only():
    sup = sv.Supervisor(quiet_log())
    starts = {"a": 0, "b": 0}

    def make(name):
        async def run():
            starts[name] += 1
            while True:
                await asyncio.sleep_ms(5)

        return run

    a = sup.add("a", make("a"), ("accel.",))
    b = sup.add("b", make("b"), ("mic.",))
    await until(lambda: starts["a"] == 1 and starts["b"] == 1)
    sup.config_changed(["accel.rate_hz"])
    await until(lambda: starts["a"] == 2)
    await asyncio.sleep_ms(20)
    assert starts["b"] == 1
    assert a.reloads == 1 and a.restarts == 0 and b.reloads == 0
    await sup.stop()


async def test_injected_fault_counts_as_failure():
    log = quiet_log()
    sup = sv.Supervisor(log)
    started = [0]

    async def svc():
        started[0] += 1
        while True:
            await asyncio.sleep_ms(5)

    s = sup.add("accel", svc)
    await until(lambda: started[0] == 1)
    sup.inject_fault("accel")
    await until(lambda: started[0] == 2, 2000)
    assert s.restarts == 1 and s.last_error == "injected fault"
    assert any("injected fault" in e["msg"] and "Traceback" in e["msg"] for e in log.entries())
    await sup.stop()


async def test_lag_monitor_sees_a_blocking_task():
    import time

    lag = sv.LagMonitor(period_ms=2)
    t = asyncio.create_task(lag.run())
    await asyncio.sleep_ms(50)
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 30:  # block the loop for 30 ms
        pass
    await asyncio.sleep_ms(20)
    t.cancel()
    st = lag.status()
    assert st["max_ms"] >= 25, st
    assert st["samples"] > 10
    assert lag.percentile(50) < 25000


def test_percentile_nearest_rank():
    lag = sv.LagMonitor()
    for v in range(1, 101):  # 1..100 µs
        lag.samples[lag.n % 128] = v
        lag.n += 1
    assert lag.percentile(99) == 99
    assert lag.percentile(50) == 50
    assert lag.top(1) == 100
    lag2 = sv.LagMonitor()
    for v in (5, 5, 5, 1):
        lag2.samples[lag2.n] = v
        lag2.n += 1
    assert lag2.top(1) == 5 and lag2.top(3) == 5 and lag2.top(4) == 1


async def test_a_stray_cancel_after_a_reload_restarts_the_service_instead_of_ending_it():
    """A service reloaded while it waits in ``asyncio.wait_for_ms`` leaves a runner task behind that, on this
    MicroPython, cancels the task it once waited in: the service's next run. The supervisor restarts it."""
    log = quiet_log()
    sup = sv.Supervisor(log)
    runs = [0]
    ev = asyncio.Event()

    async def waits():
        runs[0] += 1
        while True:
            try:
                await asyncio.wait_for_ms(ev.wait(), 10000)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep_ms(1)

    svc = sup.add("w", waits, ("w.",))
    await until(lambda: runs[0] == 1)
    await asyncio.sleep_ms(5)
    sup.config_changed(("w.x",))
    await until(lambda: svc.reloads == 1)
    await asyncio.sleep_ms(200)
    assert svc.running, (svc.reloads, svc.restarts, svc.last_error)
    assert runs[0] >= 2
    assert svc.restarts <= 1 and (svc.restarts == 0 or svc.last_error == "cancelled from outside")
    await sup.stop()
    await asyncio.sleep_ms(5)
    assert not svc.running  # a stop still stops it
