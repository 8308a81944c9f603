"""The ``sensorbox`` command line: run a simulated device, build the device bundle, deploy it to a board, pull a
device's data, train a model and push it (the last four live in deploy.py, pull.py and train.py)."""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

from sensorbox.host import bundle

DESCRIPTION = """sensorbox host tools: run a simulated device, build and deploy the device bundle,
pull a device's data, import recordings, train, evaluate and push models, see the features.
'sensorbox COMMAND --help' shows a command's options and examples."""

EPILOG_MAIN = """examples:
  sensorbox run                          simulated device on http://127.0.0.1:8080, data in ./var
  sensorbox run --port 8081 --data /tmp/box2
  sensorbox build --target esp32         compile the bundle for an ESP32 into build/esp32
  sensorbox pull http://127.0.0.1:8080 --out data/   download stored data (incrementally) as .npy/.jsonl
  sensorbox import recs/ --out data/recs --rate 100 --units m/s2   your recordings (CSV, .npy, WAV, .ts)
  sensorbox train watch --out models/mine          train a classifier (report + model for devices)
  sensorbox evaluate models/mine data/test         score it on held-out data, per window and per recording
  sensorbox features data/recs --out f.parquet     windows x features as a table for pandas
  sensorbox model push http://127.0.0.1:8080 models/mine   upload and activate it on a running device
  sensorbox deploy /dev/ttyUSB0                    copy the esp32 bundle to a board (changed files), reset it
  sensorbox ui http://192.168.1.7 --token sb_3_... a device's Analysis page (MicroPython WebAssembly) served here
"""

EPILOG_RUN = """examples:
  sensorbox run
  sensorbox run --port 9000 --data ./var/lab1 --heap 256wK
  sensorbox run --port 0 --data /tmp/box3            a second device on any free port (the URL is printed)
  SENSORBOX_ADMIN_PASSWORD=secret sensorbox run     (admin password on first start of a fresh --data)

The device runs the real app on the MicroPython unix port from the compiled bundle (build/unix-analysis: with
the Analysis page's runtime, which only boards with room in their flash carry). Its
simulated accelerometer replays data/watch_excerpt.npy at 50 Hz; its microphone plays generated signals.
On first start of a data directory the admin password is printed once (lost it? stop the device, delete
DATA/auth.json and start it again: a new one is printed; the data is kept). Ctrl-C or SIGTERM stops the
device cleanly.
"""

EPILOG_BUILD = """examples:
  sensorbox build                        the simulator's bundle (sensorbox run builds it too, when needed)
  sensorbox build --target esp32         .mpy for an ESP32's xtensawin, static files, the default model

It prints the bundle's size and its flash use against the budget; sensorbox deploy PORT copies it to a board.
"""

RESTART_EXIT_CODE = 75  # the device asks to be restarted (POST /api/restart, platform.reset())
PORT_IN_USE_EXIT_CODE = 69  # the device could not listen: another server has the port (device/app.py)


def listen_problem(host, port):
    """Why the device could not listen on ``host:port``, or None. Bound the way the device binds (SO_REUSEADDR,
    so a port a stopped device left in TIME_WAIT counts as free)."""
    import errno
    import socket

    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        return "cannot listen on {}: {}; try --host 127.0.0.1".format(host, e.strerror)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return "port {} is in use; try --port {} (or --port 0 for any free port)".format(
                    port, _free_port_near(family, addr, port))
            if e.errno == errno.EACCES:
                return "port {} needs root (ports below 1024); try --port 8080".format(port)
            if e.errno == errno.EADDRNOTAVAIL:
                return "{} is not an address of this machine; try --host 127.0.0.1".format(host)
            return "cannot listen on {}:{}: {}".format(host, port, e.strerror)
    return None


def _free_port_near(family, addr, port):
    import socket

    for p in range(port + 1, min(port + 50, 65536)):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr[0], p) + tuple(addr[2:]))
                return p
            except OSError:
                continue
    return "N"


def any_free_port(host):
    import socket

    family, _, _, _, addr = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(addr)
        return s.getsockname()[1]


# Ended by its watchdog (SIGALRM, host/watchdog.py) or by a crash: a board would reset and boot again.
RESET_SIGNALS = (signal.SIGALRM, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT)


def cmd_build(args):
    try:
        out = bundle.build(args.target, quiet=False)
    except bundle.BuildError as e:
        sys.exit("error: {}".format(e))
    import json

    with open(os.path.join(out, "bundle.json")) as f:
        m = json.load(f)
    print("bundle {} ({}): {} files, {:.1f} KB, {:.1f} KB on flash of a {} KB budget".format(
        out, m["arch"], len(m["files"]), m["bytes"] / 1024, m["flash_bytes"] / 1024, m["flash_budget"] // 1024))
    img = bundle.build_romfs(out)
    print("ROMFS image of its lib/ (code imported in place, not into the heap): {} ({:.1f} KB)".format(
        img, os.path.getsize(img) / 1024))
    if m["flash_bytes"] > m["flash_budget"]:
        sys.exit("error: the bundle exceeds its flash budget")


def cmd_run(args):
    # Before anything is built or written: a second device on a port in use must not make a data directory
    # (and a new admin password) only to fail.
    if args.port == 0:
        args.port = any_free_port(args.host)
    problem = listen_problem(args.host, args.port)
    if problem:
        sys.exit("error: " + problem)
    if not os.path.isfile(args.replay):
        sys.exit("error: --replay {}: no such file (an int16 .npy recording, frames x channels)".format(args.replay))
    if not re.match(r"^[0-9]+w?[KkMm]?$", args.heap):
        sys.exit("error: --heap {}: expected a size like 192wK (w: in 32-bit words, as on an ESP32), 384K or "
                 "2M".format(args.heap))
    try:
        out = bundle.build("unix", analysis=True)  # a simulator's flash is the host's disk: room for the Analysis page
    except bundle.BuildError as e:
        sys.exit("error: {}".format(e))
    data = os.path.abspath(args.data)
    os.makedirs(data, exist_ok=True)
    env = bundle.micropython_env(out, {
        "SENSORBOX_DATA": data, "SENSORBOX_PORT": str(args.port), "SENSORBOX_HOST": args.host,
        "SENSORBOX_REPLAY": os.path.abspath(args.replay)})
    cmd = [bundle.micropython_path(), "-X", "heapsize=" + args.heap, os.path.join(out, "main.py")]
    print("sensorbox: simulated device on http://{}:{}/  (data in {}, heap {}; Ctrl-C stops)".format(
        args.host, args.port, data, args.heap), flush=True)
    from sensorbox.host import watchdog

    running = [None]
    stopping = []  # the time the first Ctrl-C or SIGTERM came

    def on_stop(signum, frame):
        # Ctrl-C in a terminal reaches the whole process group: the device got it too. SIGTERM (a service
        # manager, kill) reaches this process only: the device is stopped as Ctrl-C does, so it flushes and is not
        # orphaned. No KeyboardInterrupt: it could come after the device had already exited 0, and then the run
        # ended without saying it was stopped (test_run_cli, once).
        if not stopping:
            stopping.append(time.monotonic())
        if signum == signal.SIGTERM and running[0] is not None and running[0].poll() is None:
            running[0].send_signal(signal.SIGINT)

    old = signal.signal(signal.SIGTERM, on_stop), signal.signal(signal.SIGINT, on_stop)
    try:
        while True:
            proc = running[0] = subprocess.Popen(cmd, env=env, cwd=data)
            unwatch = watchdog.watch(proc, data)  # the board's watchdog: SIGALRM when the device stops feeding it
            try:
                code = _wait(proc, stopping)
            finally:
                unwatch()
            if stopping:
                print("sensorbox: stopped")
                return 0
            if code == RESTART_EXIT_CODE:
                print("sensorbox: device restarting", flush=True)
                continue
            if code == PORT_IN_USE_EXIT_CODE:  # taken between the check above and the device's bind
                print("error: " + (listen_problem(args.host, args.port) or "port {} is in use; try --port".format(
                    args.port)), file=sys.stderr)
                return 1
            if code < 0 and -code in RESET_SIGNALS:
                print("sensorbox: device reset by {} ({}); starting it again".format(
                    "its watchdog" if -code == signal.SIGALRM else "a crash", signal.Signals(-code).name),
                    flush=True)
                continue
            if code != 0:
                print("sensorbox: device exited with code {}".format(code), file=sys.stderr)
            return code
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])


def _wait(proc, stopping):
    # the device's exit code; once asked to stop, it has 10 s to stop cleanly (log flushed), then it is killed
    while True:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > 10:
                proc.send_signal(signal.SIGKILL)
                return proc.wait()


def build_parser():
    p = argparse.ArgumentParser(prog="sensorbox", description=DESCRIPTION, epilog=EPILOG_MAIN,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="start a simulated device (the real app on the MicroPython unix port)",
                       epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080; 0 = any free port)")
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    r.add_argument("--data", default="./var", help="data directory: config, store, log (default ./var)")
    r.add_argument("--heap", default=bundle.APP_HEAP,
                   help="MicroPython heap (default %(default)s: w scales by word size, so 152wK on this 64-bit "
                        "port models an ESP32's 152 KB)")
    r.add_argument("--replay", default=os.path.join(bundle.REPO, "data", "watch_excerpt.npy"),
                   help="int16 .npy recording (frames x channels) the simulated accelerometer replays")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("build", help="compile the device bundle (.mpy) into build/TARGET",
                       epilog=EPILOG_BUILD, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--target", choices=sorted(bundle.TARGETS), default="unix",
                   help="unix: what 'sensorbox run' runs (default); esp32: what 'sensorbox deploy' copies to a board")
    b.set_defaults(func=cmd_build)

    from sensorbox.host import datasets, evaluate, train

    datasets.add_parsers(sub)
    train.add_commands(sub)
    evaluate.add_parser(sub)
    from sensorbox.host import pull

    pull.add_parser(sub)
    from sensorbox.host import deploy

    deploy.add_parser(sub)
    from sensorbox.host import ui

    ui.add_parser(sub)
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
