"""The unix port's watchdog against MicroPython's published ESP32 API (``micropython-esp32-esp32-generic-stubs``,
PyPI; generated from the firmware; helpers in esp32_stubs.py): ``platform/unix.py``'s ``WDT``, the double the
simulated device runs, has the stub's interface, and its timer (``host/watchdog.py``, run by ``sensorbox run``)
really resets a process that stops feeding it. (The board code itself, ``platform/esp32.py`` and ``net/``, is
type-checked against the stubs in test_board_doubles.py.)"""

import ast
import os
import signal
import subprocess
import sys
import time

from esp32_stubs import REPO, check, defs, stub, stub_dir
from sensorbox.host import bundle


def test_unix_watchdog_has_the_stub_interface(tmp_path):
    ours = defs(ast.parse(open(os.path.join(REPO, "sensorbox/device/platform/unix.py")).read()).body)
    assert "feed" in ours["WDT"][1]
    problems = check({"WDT": ours["WDT"]}, stub(stub_dir(tmp_path), "machine"), "machine")
    assert problems == [], "\n".join(problems)


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
