"""Board code against MicroPython's published ESP32 API: the ``micropython-esp32-esp32-generic-stubs`` package
(PyPI; generated from the firmware). ``platform/esp32.py`` is type-checked with mypy against those stubs, so a
call the firmware would refuse (``machine.WDT(timeout_ms=...)``, ``wdt.feed(1)``) fails here; and the unix port's
watchdog (``platform/unix.py``'s ``WDT``, the double the simulated device runs) is checked to have the stub's
interface, and its timer (``host/watchdog.py``, run by ``sensorbox run``) to really reset a process that stops
feeding it."""

import ast
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import time

from sensorbox.host import bundle

REPO = bundle.REPO
STUBS = "micropython-esp32-esp32-generic-stubs"


def _stub_dir(tmp):
    # mypy reads the board's modules (machine, network, ...) from a path of their .pyi files and the MicroPython
    # standard library from micropython-stdlib-stubs as its typeshed (as the stubs' documentation sets it up).
    dist = importlib.metadata.distribution(STUBS)
    site = str(dist.locate_file(""))
    out = os.path.join(str(tmp), "stubs")
    if os.path.isdir(out):
        return site, out
    for f in dist.files:
        if str(f).endswith(".pyi"):
            dst = os.path.join(out, str(f))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(os.path.join(site, str(f)), dst)
    shutil.copytree(os.path.join(site, "_mpy_shed"), os.path.join(out, "_mpy_shed"))
    return site, out


def _mypy(tmp, path):
    site, stubs = _stub_dir(tmp)
    res = subprocess.run([sys.executable, "-m", "mypy", "--custom-typeshed-dir", site, "--check-untyped-defs",
                          "--follow-imports=skip", "--no-error-summary", "--cache-dir", os.path.join(str(tmp), "c"),
                          path], env=dict(os.environ, MYPYPATH=stubs), capture_output=True, text=True, cwd=REPO)
    # (the stubs themselves have a few errors of their own: only the checked file's count)
    return [line for line in res.stdout.splitlines() if line.startswith(path + ":") and ": error:" in line]


def test_esp32_platform_calls_match_the_firmware_stubs(tmp_path):
    path = "sensorbox/device/platform/esp32.py"
    assert "machine.WDT(timeout=" in open(os.path.join(REPO, path)).read()
    errors = _mypy(tmp_path, path)
    assert errors == [], "\n".join(errors)
    # ...and the check can fail: the calls as the firmware would refuse them
    probe = tmp_path / "probe.py"
    probe.write_text("def f(ms):\n    import machine\n    w = machine.WDT(timeout_ms=ms)\n    w.feed(1)\n")
    bad = _mypy(tmp_path, str(probe))
    assert len(bad) == 2 and "timeout_ms" in bad[0] and "feed" in bad[1], bad


def _signature(tree, cls, fn):
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name == fn:
                    a = f.args
                    return [x.arg for x in a.args + a.kwonlyargs if x.arg != "self"], len(a.defaults + a.kw_defaults)
    raise AssertionError("{}.{} not found".format(cls, fn))


def test_unix_watchdog_has_the_stub_interface(tmp_path):
    site, stubs = _stub_dir(tmp_path)
    stub = ast.parse(open(os.path.join(stubs, "machine.pyi")).read())
    ours = ast.parse(open(os.path.join(REPO, "sensorbox/device/platform/unix.py")).read())
    for fn in ("__init__", "feed"):
        want, want_defaults = _signature(stub, "WDT", fn)
        got, got_defaults = _signature(ours, "WDT", fn)
        assert got == want and got_defaults == want_defaults, (fn, got, want)


def _run_wdt(tmp_path, script, timeout=20):
    out = bundle.build("unix")
    f = tmp_path / "wdt_probe.py"
    f.write_text(script)
    env = bundle.micropython_env(out, {"SENSORBOX_DATA": str(tmp_path)})
    return subprocess.run([bundle.micropython_path(), str(f)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_unix_watchdog_writes_each_feed_for_the_timer_outside(tmp_path):
    res = _run_wdt(tmp_path, """
from sensorbox.device.platform.unix import WDT
w = WDT(timeout=1500)
print(open("{0}/watchdog").read())
w.feed()
w.feed()
print(open("{0}/watchdog").read())
""".format(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["1 1500", "3 1500"], res.stdout


def test_host_watchdog_resets_a_device_that_stops_feeding_it(tmp_path):
    # sensorbox run's timer (host/watchdog.py): unarmed it leaves the device alone; armed and fed, too; once the
    # count stops changing for the timeout, the device gets SIGALRM (a board's reset).
    from sensorbox.host import watchdog

    (tmp_path / "watchdog").write_text("7 1000")  # a stale file from an earlier run must not arm it
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        unwatch = watchdog.watch(proc, str(tmp_path), period_s=0.1)
        time.sleep(1.5)
        assert proc.poll() is None  # not armed
        for n in range(15):  # fed every 100 ms for 1.5 s
            (tmp_path / "watchdog").write_text("{} 1000".format(n))
            time.sleep(0.1)
        assert proc.poll() is None
        t0 = time.time()
        assert proc.wait(10) == -signal.SIGALRM  # then not fed: reset after ~1 s
        assert time.time() - t0 < 8  # (a liveness bound, not a benchmark)
        unwatch()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_unix_platform_watchdog_follows_its_setting(tmp_path):
    res = _run_wdt(tmp_path, """
import os
from sensorbox.device.platform.unix import Platform
os.putenv("SENSORBOX_WATCHDOG_S", "0")
print("off", Platform().watchdog(30000))
os.putenv("SENSORBOX_WATCHDOG_S", "2.5")
w = Platform().watchdog(30000)
print("timeout", w.timeout)
w.feed()
""")
    assert res.returncode == 0, res.stderr
    assert "off None" in res.stdout and "timeout 2500" in res.stdout, res.stdout
