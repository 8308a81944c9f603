"""``sensorbox deploy`` against a real MicroPython: the unix port's REPL served over TCP by socat, driven by mpremote.

The "board" is a scratch directory in which socat starts ``micropython`` for each connection; what mpremote
writes lands there, so the test sees the board's file system directly.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from sensorbox.host import bundle, deploy
from conftest import free_port


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "board"
    root.mkdir()
    port = free_port()
    socat = shutil.which("socat")
    assert socat, "socat is missing: make test installs it (scripts/ensure-system-packages socat)"
    # rawer + opost=0: no echo, no CR/LF rewriting on the pty, so mpremote's raw REPL sees what MicroPython sends.
    proc = subprocess.Popen(
        [socat, "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork".format(port),
         "EXEC:{},pty,rawer,onlcr=0,opost=0,stderr,setsid".format(bundle.micropython_path())],
        cwd=str(root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield "socket://127.0.0.1:{}".format(port), root
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _bundle(path, files):
    for rel, data in files.items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return str(path)


def _tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            out[os.path.relpath(full, root).replace(os.sep, "/")] = open(full, "rb").read()
    return out


def test_copies_only_what_changed_and_deletes_only_stale_bundle_files(board, tmp_path):
    port, root = board
    files = {"main.py": b"import sensorbox\n", "bundle.json": b'{"version": 1}', "lib/sensorbox/a.mpy": b"M\x06a" * 300,
             "lib/sensorbox/device/b.mpy": b"M\x06b", "www/index.html.gz": bytes(range(256)) * 3,
             "models/default/model.csv": b"f,3\n"}
    src = _bundle(tmp_path / "v1", files)
    # Things on the board the bundle does not own: must survive every deploy.
    (root / "data").mkdir()
    (root / "data" / "config.json").write_text('{"device.name": "kept"}')
    (root / "models" / "user").mkdir(parents=True)
    (root / "models" / "user" / "model.csv").write_text("mine")
    logged = []

    copied, deleted = deploy.deploy(port, src, reset="none", log=logged.append)
    assert sorted(copied) == sorted(files) and copied[-1] == "bundle.json" and deleted == []
    tree = _tree(root)
    for rel, data in files.items():
        assert tree[rel] == data, rel
    assert "6 to copy, 0 to delete" in logged[0]

    # Same bundle again: nothing to do.
    assert deploy.deploy(port, src, reset="none", log=logged.append) == ([], [])

    # One file changed, one gone, one new: exactly those move; bundle.json goes last.
    files2 = dict(files)
    files2["lib/sensorbox/device/b.mpy"] = b"M\x06B2"
    del files2["www/index.html.gz"]
    files2["www/app.js.gz"] = b"\x1f\x8bjs"
    files2["bundle.json"] = b'{"version": 2}'
    src2 = _bundle(tmp_path / "v2", files2)
    copied, deleted = deploy.deploy(port, src2, reset="none", log=logged.append)
    assert copied == ["lib/sensorbox/device/b.mpy", "www/app.js.gz", "bundle.json"]
    assert deleted == ["www/index.html.gz"]
    tree = _tree(root)
    assert {k: v for k, v in tree.items() if k in files2} == files2
    assert "www/index.html.gz" not in tree
    assert tree["data/config.json"] == b'{"device.name": "kept"}'
    assert tree["models/user/model.csv"] == b"mine"


def test_dry_run_changes_nothing_and_wifi_is_written_not_shown(board, tmp_path):
    port, root = board
    src = _bundle(tmp_path / "b", {"main.py": b"x = 1\n", "bundle.json": b"{}"})
    logged = []
    copied, _ = deploy.deploy(port, src, dry_run=True, reset="none", log=logged.append)
    assert copied == ["main.py", "bundle.json"] and _tree(root) == {}
    deploy.deploy(port, src, reset="none", wifi=("Lab net", "s3cret pw"), log=logged.append,
                  ap_password="ap-s3cret-pw")
    assert json.loads((root / "data" / "wifi.json").read_text()) == {"ssid": "Lab net", "password": "s3cret pw"}
    assert json.loads((root / "data" / "ap.json").read_text()) == {"ap_password": "ap-s3cret-pw"}
    assert not any("s3cret" in line for line in logged)


def test_unreachable_port_gives_a_clear_error(tmp_path):
    src = _bundle(tmp_path / "b", {"main.py": b"x = 1\n"})
    with pytest.raises(deploy.DeployError) as e:
        deploy.deploy("socket://127.0.0.1:{}".format(free_port()), src, reset="none", log=lambda s: None)
    assert "mpremote failed on socket://127.0.0.1:" in str(e.value)


def test_cli_dry_run_lists_the_real_esp32_bundle(board):
    port, root = board
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "deploy", port, "--dry-run"],
                       capture_output=True, text=True, timeout=300, cwd=bundle.REPO)
    assert r.returncode == 0, r.stderr
    m = json.load(open(os.path.join(bundle.BUILD, "esp32", "bundle.json")))
    n = len(m["files"]) + 1  # + bundle.json itself
    assert "{} files in the bundle, {} to copy, 0 to delete (dry run)".format(n, n) in r.stdout, r.stdout
    assert "copy   lib/sensorbox/device/sensors/lsm6ds3.mpy" in r.stdout
    assert _tree(root) == {}


def test_help_has_examples():
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "deploy", "--help"], capture_output=True,
                       text=True, timeout=60, cwd=bundle.REPO)
    assert r.returncode == 0 and "examples:" in r.stdout and "sensorbox deploy /dev/ttyUSB0" in r.stdout


def test_plan_is_by_hash():
    h = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    local = {"main.py": h(b"1"), "lib/a.mpy": h(b"2"), "bundle.json": h(b"3")}
    remote = {"main.py": h(b"1"), "lib/a.mpy": h(b"old"), "lib/gone.mpy": h(b"x"), "bundle.json": h(b"3"),
              "data/config.json": h(b"c")}
    assert deploy.plan(local, remote) == (["lib/a.mpy", "bundle.json"], ["lib/gone.mpy"])
