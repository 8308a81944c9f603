"""``sensorbox deploy PORT``: copy the device bundle (build/esp32) to a board with mpremote, only what changed.

Steps, each one ``mpremote`` run (PyPI ``mpremote``; PORT is whatever ``mpremote connect`` takes: ``/dev/ttyUSB0``,
``COM3``, ``socket://HOST:PORT``):

1. build the bundle (``sensorbox build --target esp32`` unless ``--target`` says otherwise);
2. interrupt what runs on the board and list the SHA-256 of the files the bundle owns there (``main.py``,
   ``bundle.json``, everything under ``lib/``, ``www/``, ``models/default/``), with a small script run by
   ``mpremote exec`` that reads each file in 512-byte pieces;
3. make missing directories, copy the files whose hash differs or that are missing (``bundle.json`` last, so
   it marks a complete deploy), and delete files in those bundle-owned directories that the bundle no longer has
   (never anything else: the data directory ``/data``, with config, store and uploaded models, is left alone);
4. optionally write ``data/wifi.json`` (``--wifi SSID``; the password from ``SENSORBOX_WIFI_PASSWORD`` or a
   prompt, never printed);
5. reset the board (``--reset hard``, the default: ``machine.reset()``, which runs the new ``main.py``).

Paths on the board are relative to its working directory: ``/`` on an ESP32. Tests point it at the unix port
run under ``socat`` in a scratch directory (tests/host/test_deploy.py).
"""

import getpass
import hashlib
import json
import os
import subprocess
import sys

from sensorbox.host import bundle

#: What the bundle owns on the board: these files, and everything under these directories.
OWNED_FILES = ("main.py", "bundle.json")
OWNED_DIRS = ("lib", "www", "models/default")

EPILOG = """examples:
  sensorbox deploy /dev/ttyUSB0                   build for esp32, copy what changed, reset the board
  sensorbox deploy /dev/ttyUSB0 --dry-run         only say what would be copied and deleted
  sensorbox deploy /dev/ttyUSB0 --ap-password 'a-long-one'   the set-up access point's WPA2 password
  sensorbox deploy --ota http://sensorbox-ab12.local/     update the app over Wi-Fi (signed; rolled back unless
                                                  it stays healthy)
  sensorbox deploy --ota http://bench.local/ --ota-file update.sbu   sign it only, to upload in the web UI
  sensorbox deploy /dev/ttyACM0 --wifi MyNet      also write data/wifi.json (password: $SENSORBOX_WIFI_PASSWORD
                                                  or a prompt)
  sensorbox deploy socket://127.0.0.1:7777 --reset none    a MicroPython REPL served over TCP (e.g. by socat)

Only files whose SHA-256 differs are copied, so a second deploy of the same build copies nothing. Files in
lib/, www/ and models/default/ that the bundle no longer has are deleted; the data directory (/data: config,
stored data, uploaded models) is never touched.
"""

# Runs on the board (MicroPython): prints "F <path> <sha256>" for every file the bundle owns, then "END".
_LIST = """
import os, hashlib, binascii
def _h(p):
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
def _w(d):
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return
    for e in it:
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            _w(p)
        else:
            print('F', p, _h(p))
for p in FILES:
    try:
        os.stat(p)
    except OSError:
        continue
    print('F', p, _h(p))
for d in DIRS:
    _w(d)
print('END')
"""


# Runs on the board: an os call for each path, ignoring "exists"/"already gone".
_EACH = "import os\nfor p in {!r}:\n    try:\n        {}\n    except OSError:\n        pass\n"


class DeployError(Exception):
    pass


def _mpremote():
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "mpremote"]


def run_mpremote(port, args, timeout=120):
    """Run ``mpremote connect PORT resume ARGS``; returns stdout. DeployError with mpremote's message if it fails."""
    cmd = _mpremote() + ["connect", port, "resume"] + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError("mpremote timed out talking to {} ({} s)".format(port, timeout))
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise DeployError("mpremote failed on {}: {}".format(port, err))
    return p.stdout


def remote_hashes(port):
    """{path: sha256 hex} of the bundle-owned files on the board."""
    script = "FILES = {!r}\nDIRS = {!r}\n".format(OWNED_FILES, OWNED_DIRS) + _LIST
    out = run_mpremote(port, ["exec", script])
    got = {}
    ended = False
    for line in out.splitlines():
        parts = line.strip().split(" ")
        if parts == ["END"]:
            ended = True
        elif len(parts) == 3 and parts[0] == "F":
            got[parts[1]] = parts[2]
    if not ended:
        raise DeployError("the board did not list its files (output: {!r})".format(out[-300:]))
    return got


def local_files(out_dir):
    """{path: sha256 hex} of the bundle's files, paths relative to the bundle (= the board's root)."""
    files = {}
    for root, _, names in os.walk(out_dir):
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, out_dir).replace(os.sep, "/")
            with open(full, "rb") as f:
                files[rel] = hashlib.sha256(f.read()).hexdigest()
    return files


def _owned(path):
    return path in OWNED_FILES or any(path.startswith(d + "/") for d in OWNED_DIRS)


def plan(local, remote):
    """(paths to copy, paths to delete): changed or missing files, bundle.json last; stale bundle-owned files."""
    copy = sorted(p for p in local if remote.get(p) != local[p] and p != "bundle.json")
    if "bundle.json" in local and (copy or remote.get("bundle.json") != local["bundle.json"]):
        copy.append("bundle.json")
    delete = sorted(p for p in remote if p not in local and _owned(p))
    return copy, delete


def _dirs_of(paths):
    dirs = set()
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _write_data(port, name, text):
    # Sent as a literal inside the script: it travels over the serial line only, and is never printed.
    wr = ("import os\ntry:\n    os.mkdir('data')\nexcept OSError:\n    pass\n"
          "with open('data/{}', 'w') as f:\n    f.write({!r})\n").format(name, text)
    run_mpremote(port, ["exec", wr])


def deploy(port, out_dir, dry_run=False, reset="hard", wifi=None, log=print, batch=40, ap_password=None):
    """Bring the board at ``port`` to the bundle in ``out_dir``. Returns (copied, deleted) path lists."""
    local = local_files(out_dir)
    remote = remote_hashes(port)
    copy, delete = plan(local, remote)
    log("{}: {} files in the bundle, {} to copy, {} to delete{}".format(
        port, len(local), len(copy), len(delete), " (dry run)" if dry_run else ""))
    for p in copy:
        log("  copy   " + p)
    for p in delete:
        log("  delete " + p)
    if dry_run:
        return copy, delete
    if copy:
        run_mpremote(port, ["exec", _EACH.format(_dirs_of(copy), "os.mkdir(p)")])
        for i in range(0, len(copy), batch):
            args = []
            for p in copy[i:i + batch]:
                if args:
                    args.append("+")
                args += ["fs", "cp", os.path.join(out_dir, p), ":" + p]
            run_mpremote(port, args, timeout=600)
    if delete:
        run_mpremote(port, ["exec", _EACH.format(delete, "os.remove(p)")])
    if copy or delete:  # the app deployed now runs next, not an earlier over-the-air update (device/ota.py)
        out = run_mpremote(port, ["exec", "import os\ntry:\n    os.remove('data/app/state.json')\n    print('RESET')\n"
                                          "except OSError:\n    pass\n"])
        if "RESET" in (out or ""):
            log("  reset  data/app/state.json (this app runs, not the earlier over-the-air update)")
    if wifi is not None:
        ssid, password = wifi
        _write_data(port, "wifi.json", json.dumps({"ssid": ssid, "password": password}))
        log("  wrote  data/wifi.json (ssid {!r})".format(ssid))
    if ap_password is not None:
        _write_data(port, "ap.json", json.dumps({"ap_password": ap_password}))
        log("  wrote  data/ap.json (the set-up access point's password)")
    if reset == "hard":
        run_mpremote(port, ["reset"])
        log("reset the board")
    elif reset == "soft":
        run_mpremote(port, ["soft-reset"])
        log("soft-reset the board")
    return copy, delete


def _ap_password(v):
    if not 8 <= len(v) <= 63:
        import argparse

        raise argparse.ArgumentTypeError("a WPA2 password has 8 to 63 characters")
    return v


def cmd_deploy(args):
    if args.ota:  # over the air (host/ota.py): no serial port
        from sensorbox.host import ota

        pw = os.getenv("SENSORBOX_PASSWORD")
        if pw is None and sys.stdin.isatty():
            pw = getpass.getpass("admin password of {}: ".format(args.ota))
        return ota.cmd(args, pw)
    if not args.port:
        sys.exit("error: give the board's serial port (PORT), or --ota URL to update a device over the network")
    try:
        out = bundle.build(args.target, quiet=True)
    except bundle.BuildError as e:
        sys.exit("error: {}".format(e))
    wifi = None
    if args.wifi is not None:
        pw = os.getenv("SENSORBOX_WIFI_PASSWORD")
        if pw is None:
            pw = getpass.getpass("Wi-Fi password for {}: ".format(args.wifi))
        wifi = (args.wifi, pw)
    try:
        deploy(args.port, out, dry_run=args.dry_run, reset=args.reset, wifi=wifi, ap_password=args.ap_password)
        if args.ota_key:
            from sensorbox.host import ota

            ota.write_key_usb(args.port)
    except DeployError as e:
        sys.exit("error: {}".format(e))
    return 0


def add_parser(sub):
    import argparse

    d = sub.add_parser("deploy", help="copy the device bundle to a board with mpremote (only changed files), reset",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("port", metavar="PORT", nargs="?",
                   help="serial port or mpremote device (/dev/ttyUSB0, socket://HOST:PORT); not with --ota")
    d.add_argument("--ota", metavar="URL", help="update the app of the device at URL over the network (signed, "
                   "written to its inactive slot, rolled back unless it stays healthy); admin password from "
                   "$SENSORBOX_PASSWORD or asked")
    d.add_argument("--ota-file", metavar="FILE", help="with --ota: write the signed update to FILE instead of "
                   "sending it (to upload on the device's Health page)")
    d.add_argument("--ota-key", action="store_true", help="also write a new update key to the board over USB "
                   "(and keep the host's copy in ~/.config/sensorbox/ota-keys)")
    d.add_argument("--target", choices=sorted(bundle.TARGETS), default="esp32",
                   help="bundle to deploy (default esp32)")
    d.add_argument("--dry-run", action="store_true", help="only list what would be copied and deleted")
    d.add_argument("--reset", choices=("hard", "soft", "none"), default="hard",
                   help="how to restart the board afterwards (default hard: machine.reset())")
    d.add_argument("--wifi", metavar="SSID", help="also write data/wifi.json for this network")
    d.add_argument("--ap-password", metavar="PW", type=_ap_password,
                   help="the WPA2 password of the device's set-up access point (8-63 characters; else one is made "
                        "at its first start and printed on its serial console)")
    d.set_defaults(func=cmd_deploy)
