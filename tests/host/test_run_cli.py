"""`sensorbox run` (what `make run` calls) end to end, a bad config at boot, and the CLI's help."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from conftest import start_run, wait_for

from sensorbox.host import cli


def _status(port):
    with urllib.request.urlopen("http://127.0.0.1:{}/api/status".format(port), timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_run_answers_fast_samples_flow_and_stops_cleanly(tmp_path, stop):
    # Ctrl-C in a terminal reaches the whole process group; a service manager or `kill` sends SIGTERM to
    # `sensorbox run` only, and the device must stop with it (log flushed), not run on holding the port.
    data = tmp_path / "var"
    out = open(tmp_path / "out.txt", "wb")
    proc = None
    try:
        proc, port, st = start_run(data, out)
        assert st["firmware"]["implementation"] == "micropython"
        wait_for(lambda: _status(port)["sensors"], "both sensors' counters moving",  # sampling
                 lambda s: all(s[n]["received"] > st["sensors"][n]["received"] for n in ("accel", "mic")))
        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.terminate()
        assert proc.wait(60) == 0  # (a second or two alone)
    finally:
        if proc is not None and proc.poll() is None:
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
    with pytest.raises(OSError):
        _status(port)  # nothing answers any more


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
    for argv in (["--help"], ["run", "--help"], ["build", "--help"], ["pull", "--help"], ["train", "--help"],
                 ["model", "--help"], ["model", "push", "--help"], ["model", "info", "--help"],
                 ["model", "rollback", "--help"], ["deploy", "--help"], ["import", "--help"], ["evaluate", "--help"],
                 ["features", "--help"], ["ui", "--help"]):
        try:
            cli.main(argv)
        except SystemExit as e:
            assert e.code == 0
        out = capsys.readouterr().out
        assert "example" in out and "sensorbox " + " ".join(a for a in argv if a != "--help") in out, argv
    # the overview names every command there is
    import argparse

    p = cli.build_parser()
    commands = set(next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices)
    assert commands >= {"run", "build", "deploy", "pull", "train", "model", "import", "evaluate", "features"}
    for c in commands:
        assert c in p.description, c


def _held_port():
    """A listening socket on a free port, as a first device would hold it."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_run_on_a_port_in_use_exits_at_once_and_writes_nothing(tmp_path):
    held, port = _held_port()
    try:
        data = tmp_path / "second"
        r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "run", "--port", str(port), "--data",
                            str(data)], capture_output=True, text=True, timeout=120)
    finally:
        held.close()
    assert r.returncode != 0
    assert "port {} is in use; try --port".format(port) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout and "serving on" not in r.stdout
    assert not data.exists()  # no data directory, no admin password made for nothing


def test_device_app_on_a_port_in_use_stops_with_one_log_line_and_its_exit_code(tmp_path, monkeypatch, capsys):
    # The device app itself (what runs on a board): its HTTP service must not crash-loop when the bind fails.
    # `sensorbox run` maps the exit code to the same advice (a port taken after its own check).
    from sensorbox.host import bundle

    held, port = _held_port()
    try:
        out = bundle.build("unix")
        data = tmp_path / "dev"
        data.mkdir()
        env = bundle.micropython_env(out, {"SENSORBOX_DATA": str(data), "SENSORBOX_PORT": str(port),
                                           "SENSORBOX_HOST": "127.0.0.1", "SENSORBOX_ADMIN_PASSWORD": "pw",
                                           "SENSORBOX_REPLAY": os.path.join(bundle.REPO, "data",
                                                                            "watch_excerpt.npy")})
        r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + bundle.APP_HEAP,
                            os.path.join(out, "main.py")], env=env, cwd=str(data), capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == cli.PORT_IN_USE_EXIT_CODE, r.stdout + r.stderr
        text = r.stdout + r.stderr
        assert text.count("port {} is in use".format(port)) == 1, text
        assert "Traceback" not in text and "restart" not in text, text
        assert "port {} is in use".format(port) in (data / "log.txt").read_text()  # flushed on the way out

        monkeypatch.setattr(cli, "listen_problem", lambda host, p: None)  # as if the port was taken after the check
        code = cli.main(["run", "--port", str(port), "--data", str(tmp_path / "raced")])
    finally:
        held.close()
    assert code != 0
    assert "port {} is in use; try --port".format(port) in capsys.readouterr().err
