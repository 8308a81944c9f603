"""The ``sensorbox`` command line: run a simulated device, build the device bundle (later: pull, train, deploy)."""

import argparse
import os
import signal
import subprocess
import sys

from sensorbox.host import bundle

EPILOG_MAIN = """examples:
  sensorbox run                          simulated device on http://127.0.0.1:8080, data in ./var
  sensorbox run --port 8081 --data /tmp/box2
  sensorbox build --target esp32         compile the bundle for an ESP32 into build/esp32
  sensorbox pull http://127.0.0.1:8080 --out data/   download stored data (incrementally) as .npy/.jsonl
  sensorbox train watch --out models/mine          train a classifier (report + model for devices)
  sensorbox model push http://127.0.0.1:8080 models/mine   upload and activate it on a running device
  sensorbox deploy /dev/ttyUSB0                    copy the esp32 bundle to a board (changed files), reset it
"""

EPILOG_RUN = """examples:
  sensorbox run
  sensorbox run --port 9000 --data ./var/lab1 --heap 256wK
  SENSORBOX_ADMIN_PASSWORD=secret sensorbox run     (admin password on first start of a fresh --data)

The device runs the real app on the MicroPython unix port from the compiled bundle (build/unix). Its
simulated accelerometer replays data/watch_excerpt.npy at 50 Hz; its microphone plays generated signals.
On first start of a data directory the admin password is printed once. Ctrl-C stops the device cleanly.
"""

RESTART_EXIT_CODE = 75  # the device asks to be restarted (POST /api/restart, platform.reset())


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
    try:
        out = bundle.build("unix")
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
    while True:
        proc = subprocess.Popen(cmd, env=env, cwd=data)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # The device got the same SIGINT from the terminal; give it time to stop cleanly.
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                code = proc.wait()
            print("sensorbox: stopped")
            return 0
        if code == RESTART_EXIT_CODE:
            print("sensorbox: device restarting", flush=True)
            continue
        if code != 0:
            print("sensorbox: device exited with code {}".format(code), file=sys.stderr)
        return code


def build_parser():
    p = argparse.ArgumentParser(prog="sensorbox", description="sensorbox host tools: simulate, build, deploy.",
                                epilog=EPILOG_MAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="start a simulated device (the real app on the MicroPython unix port)",
                       epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    r.add_argument("--data", default="./var", help="data directory: config, store, log (default ./var)")
    r.add_argument("--heap", default=bundle.APP_HEAP,
                   help="MicroPython heap (default %(default)s: w scales by word size, so 160wK on this 64-bit "
                        "port models an ESP32's 160 KB)")
    r.add_argument("--replay", default=os.path.join(bundle.REPO, "data", "watch_excerpt.npy"),
                   help="int16 .npy recording (frames x channels) the simulated accelerometer replays")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("build", help="compile the device bundle (.mpy) into build/TARGET",
                       epilog="example:\n  sensorbox build --target esp32",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--target", choices=sorted(bundle.TARGETS), default="unix")
    b.set_defaults(func=cmd_build)

    from sensorbox.host import train

    train.add_commands(sub)
    from sensorbox.host import pull

    pull.add_parser(sub)
    from sensorbox.host import deploy

    deploy.add_parser(sub)
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
