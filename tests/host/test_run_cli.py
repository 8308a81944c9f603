"""`sensorbox run` (what `make run` calls) end to end, a bad config at boot, and the CLI's help."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import free_port

from sensorbox.host import cli


def _status(port):
    with urllib.request.urlopen("http://127.0.0.1:{}/api/status".format(port), timeout=5) as r:
        return json.loads(r.read())


def test_run_answers_fast_samples_flow_and_ctrl_c_stops_cleanly(tmp_path):
    port = free_port()
    data = tmp_path / "var"
    out = open(tmp_path / "out.txt", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "sensorbox.host.cli", "run", "--port", str(port),
                             "--data", str(data)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.time()
        st = None
        while time.time() - t0 < 20:
            try:
                st = _status(port)
                break
            except OSError:
                time.sleep(0.2)
        assert st is not None, "no answer within 20 s"
        assert st["firmware"]["implementation"] == "micropython"
        for _ in range(50):  # sampling: both sensors' counters move
            st2 = _status(port)
            if all(st2["sensors"][n]["received"] > st["sensors"][n]["received"] for n in ("accel", "mic")):
                break
            time.sleep(0.2)
        assert all(st2["sensors"][n]["received"] > st["sensors"][n]["received"] for n in ("accel", "mic")), st2
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out.close()
    text = (tmp_path / "out.txt").read_text()
    assert "http://127.0.0.1:{}/".format(port) in text
    assert "admin password (shown once)" in text
    assert "sensorbox: stopped" in text
    log = (data / "log.txt").read_text()
    assert "app stopping" in log  # the device flushed its log on the way out
    pw = text.split("admin password (shown once): ")[1].split()[0]
    assert pw not in log and pw not in (data / "auth.json").read_text()


def test_corrupt_config_at_boot_is_reported_and_kept_aside(device_factory, tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "config.json").write_text('{"accel.rate_hz": 51, "device.name": "x"}')
    dev = device_factory(data)
    st = dev.status()
    assert "accel.rate_hz" in st["config"]["boot_error"] and "config.json.bad" in st["config"]["boot_error"]
    assert st["sensors"]["accel"]["rate_hz"] == 50  # the bad key reset to its default...
    assert st["device"]["name"] == "x"  # ...the others kept
    assert (data / "config.json.bad").read_text() == '{"accel.rate_hz": 51, "device.name": "x"}'
    assert json.loads((data / "config.json").read_text()) == {"device.name": "x"}  # repaired
    assert dev.get("/api/config").json()["boot_error"] == st["config"]["boot_error"]


def test_help_has_examples(capsys):
    for argv in (["--help"], ["run", "--help"], ["build", "--help"]):
        try:
            cli.main(argv)
        except SystemExit as e:
            assert e.code == 0
        out = capsys.readouterr().out
        assert "example" in out and "sensorbox" in out
