"""``sensorbox deploy`` against a real MicroPython: the unix port's REPL served over TCP by socat, driven by mpremote.

The "board" is a scratch directory in which socat starts ``micropython`` for each connection; what mpremote
writes lands there, so the test sees the board's file system directly. With ``--board unix`` (the unix port's
profile) deploy checks it as it checks an ESP32: version, ``.mpy`` ABI, heap, flash; emlearn's modules come from a
folder or, with mip, from a local HTTP server laid out like emlearn's published builds.
"""

import contextlib
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from sensorbox.host import boards, bundle, deploy
from conftest import free_port


@contextlib.contextmanager
def _serve_board(root, heap=None):
    root.mkdir()
    port = free_port()
    socat = shutil.which("socat")
    assert socat, "socat is missing: make test installs it (scripts/ensure-system-packages socat)"
    mp = bundle.micropython_path() + (" -X heapsize={}".format(heap) if heap else "")
    # rawer + opost=0: no echo, no CR/LF rewriting on the pty, so mpremote's raw REPL sees what MicroPython sends.
    proc = subprocess.Popen(
        [socat, "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork".format(port),
         "EXEC:{},pty,rawer,onlcr=0,opost=0,stderr,setsid".format(mp)],
        cwd=str(root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60  # (at once alone; longer on a loaded machine)
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


@pytest.fixture
def board(tmp_path):
    with _serve_board(tmp_path / "board") as b:
        yield b


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


# --- deploy --board: checks, emlearn's modules, pins ------------------------------------------------------------

def _board_bundle(path):
    """A small bundle with the bundle.json fields deploy --board reads."""
    return _bundle(path, {"main.py": b"x = 1\n", "lib/sensorbox/a.mpy": b"M\x06a",
                          "bundle.json": json.dumps({"flash_bytes": 8192}).encode()})


def _natmods(path, arch):
    """emlearn_trees/_fft/_iir.mpy for ``arch``: a viper function each, so the header carries the architecture."""
    path.mkdir(parents=True, exist_ok=True)
    src = path / "src.py"
    src.write_text("import micropython\n\n\n@micropython.viper\ndef f(x: int) -> int:\n    return x + 1\n")
    for m in boards.NATMODS:
        bundle.compile_one(str(src), str(path / (m + ".mpy")), arch, m)
    src.unlink()
    return str(path)


def test_board_is_checked_and_emlearn_modules_installed_from_a_folder(board, tmp_path):
    port, root = board
    src = _board_bundle(tmp_path / "b")
    nm = _natmods(tmp_path / "nm" / "x64_6.3", "x64")
    logged = []
    deploy.deploy(port, src, reset="none", board="unix", natmods_dir=str(tmp_path / "nm"), log=logged.append)
    text = "\n".join(logged)
    assert "board: MicroPython 1.2" in text and ".mpy 6.3 x64" in text and "KB heap free" in text, text
    tree = _tree(root)
    for m in boards.NATMODS:
        assert tree["lib/" + m + ".mpy"] == open(os.path.join(nm, m + ".mpy"), "rb").read()
        assert "installed lib/{}.mpy (copied)".format(m) in text
    assert tree["main.py"] == b"x = 1\n"
    # again: nothing to copy, the modules are up to date; a bundle without them does not delete them
    logged.clear()
    assert deploy.deploy(port, src, reset="none", board="unix", natmods_dir=nm, log=logged.append) == ([], [])
    assert not any("emlearn lib/" in line for line in logged), logged
    deploy.deploy(port, src, reset="none", log=logged.append)  # no --board: plain copy
    assert all("lib/" + m + ".mpy" in _tree(root) for m in boards.NATMODS)


def test_a_mismatched_abi_is_refused_before_anything_is_copied(board, tmp_path):
    port, root = board
    src = _board_bundle(tmp_path / "b")
    nm = _natmods(tmp_path / "nm", "xtensawin")
    with pytest.raises(deploy.DeployError) as e:
        deploy.deploy(port, src, reset="none", board="unix", natmods_dir=nm, log=lambda s: None)
    assert "built for xtensawin (.mpy 6.3), the board needs x64" in str(e.value) and "x64_6.3" in str(e.value)
    # a profile for another chip: the board's own ABI refuses it, and says which profile fits
    with pytest.raises(deploy.DeployError) as e:
        deploy.deploy(port, src, reset="none", board="esp32", no_natmods=True, log=lambda s: None)
    assert "native code is x64" in str(e.value) and "xtensawin" in str(e.value) and "--board unix" in str(e.value)
    assert _tree(root) == {}


def test_too_little_heap_or_flash_is_refused(tmp_path, monkeypatch):
    src = _board_bundle(tmp_path / "b")
    with _serve_board(tmp_path / "small", heap="64wK") as (port, root):  # the app needs bundle.APP_HEAP
        with pytest.raises(deploy.DeployError) as e:
            deploy.deploy(port, src, reset="none", board="unix", no_natmods=True, log=lambda s: None)
        assert "KB of heap free at the REPL, the app needs" in str(e.value) and "--force" in str(e.value)
        assert _tree(root) == {}
        logged = []
        deploy.deploy(port, src, reset="none", board="unix", no_natmods=True, force=True, log=logged.append)
        assert any("--force: copying anyway" in line for line in logged) and "main.py" in _tree(root)
    with _serve_board(tmp_path / "full") as (port, root):
        monkeypatch.setitem(boards.PROFILES["unix"], "data_min", 1 << 60)  # a board whose flash is all but full
        with pytest.raises(deploy.DeployError) as e:
            deploy.deploy(port, src, reset="none", board="unix", no_natmods=True, log=lambda s: None)
        assert "would be left for data" in str(e.value) and _tree(root) == {}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def test_emlearn_modules_with_mip_from_the_published_layout_and_offline(board, tmp_path):
    port, root = board
    src = _board_bundle(tmp_path / "b")
    site = tmp_path / "site"
    nm = _natmods(site / "builds" / "latest" / "x64_6.3", "x64")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:{}/builds/latest".format(httpd.server_address[1])
        logged = []
        deploy.deploy(port, src, reset="none", board="unix", emlearn_url=url, log=logged.append)
        tree = _tree(root)
        for m in boards.NATMODS:
            assert tree["lib/" + m + ".mpy"] == open(os.path.join(nm, m + ".mpy"), "rb").read()
            assert "installed lib/{}.mpy (mip)".format(m) in logged
    finally:
        httpd.shutdown()
    # offline: deploy goes on without them and says so
    with _serve_board(tmp_path / "b2") as (port2, root2):
        logged = []
        deploy.deploy(port2, src, reset="none", board="unix", emlearn_url="http://127.0.0.1:{}/b".format(free_port()),
                      log=logged.append)
        assert any("cannot reach" in line and "--natmods DIR" in line for line in logged), logged
        assert "main.py" in _tree(root2) and not any(k.startswith("lib/emlearn") for k in _tree(root2))


def test_pins_go_where_the_config_has_none_and_romfs_needs_image_and_partition(board, tmp_path, monkeypatch):
    port, root = board
    src = _board_bundle(tmp_path / "b")
    (root / "data").mkdir()
    (root / "data" / "config.json").write_text(json.dumps({"board.i2c_sda": 5, "device.name": "kept"}))
    monkeypatch.setitem(boards.PROFILES["unix"], "pins", dict(boards.PROFILES["esp32"]["pins"]))
    logged = []
    deploy.deploy(port, src, reset="none", board="unix", no_natmods=True, pins=True, log=logged.append)
    cfg = json.loads((root / "data" / "config.json").read_text())
    want = dict(boards.PROFILES["esp32"]["pins"], **{"board.i2c_sda": 5, "device.name": "kept"})
    assert cfg == want
    assert any("pins: board.i2c_scl=22" in line for line in logged), logged
    with pytest.raises(deploy.DeployError) as e:
        deploy.deploy(port, src, reset="none", board="unix", no_natmods=True, romfs=True, log=lambda s: None)
    assert "no ROMFS image at" in str(e.value) and "sensorbox build" in str(e.value)
    with open(deploy.romfs_image(src), "wb") as f:
        f.write(b"\xd2\xcd\x31")
    with pytest.raises(deploy.DeployError) as e:  # the unix port from PyPI has no ROMFS
        deploy.deploy(port, src, reset="none", board="unix", no_natmods=True, romfs=True, log=lambda s: None)
    assert "no ROMFS partition" in str(e.value)


def test_cli_board_dry_run_checks_and_lists(board):
    port, root = board
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "deploy", port, "--board", "unix", "--dry-run",
                        "--no-natmods"], capture_output=True, text=True, timeout=300, cwd=bundle.REPO)
    assert r.returncode == 0, r.stderr
    assert "board: MicroPython" in r.stdout and "(dry run)" in r.stdout and _tree(root) == {}
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "deploy", port, "--board", "esp32", "--dry-run"],
                       capture_output=True, text=True, timeout=300, cwd=bundle.REPO)
    assert r.returncode != 0 and "error: the board's native code is x64" in r.stderr, r.stderr


def test_headers_and_app_heap():
    assert boards.mpy_header(b"M\x06\x0b\x1f") == (6, "x64", 3)
    assert boards.mpy_header(b"M\x06\x2b\x1f") == (6, "xtensawin", 3)
    assert boards.mpy_header(b"M\x06\x2f\x1f") == (6, "rv32imc", 3)
    assert boards.mpy_header(b"M\x06\x00\x1f") == (6, "none", 0)
    assert boards.board_abi(2822) == (6, "x64", 3)
    with pytest.raises(ValueError):
        boards.mpy_header(b"\x7fELF")
    n = float(bundle.APP_HEAP.rstrip("wKk"))
    assert deploy.app_heap_bytes(4) == int(n * 1024) and deploy.app_heap_bytes(8) == int(n * 2048)
