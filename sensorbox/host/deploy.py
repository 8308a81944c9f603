"""``sensorbox deploy PORT``: copy the device bundle (build/esp32) to a board with mpremote, only what changed.

Steps, each one ``mpremote`` run (PyPI ``mpremote``; PORT is whatever ``mpremote connect`` takes: ``/dev/ttyUSB0``,
``COM3``, ``socket://HOST:PORT``):

1. build the bundle (``sensorbox build --target esp32`` unless ``--target`` or ``--board`` says otherwise);
2. with ``--board NAME`` (a profile of ``sensorbox.host.boards``): ask the board for its MicroPython version,
   ``.mpy`` ABI (``sys.implementation._mpy``), free heap and free flash, and refuse, saying why and what to do,
   a firmware older than 1.23, another architecture or ABI than the profile's, less free heap than the app needs
   (``bundle.APP_HEAP``; ``--force`` copies anyway), or a copy that would leave less flash for data than the profile
   asks; pick emlearn-micropython's native modules for the board's architecture and ABI (``--natmods DIR``, or
   emlearn's published builds with ``mip`` when the host is online) and refuse any whose ``.mpy`` header says
   another architecture or ABI. Nothing is copied before every check has passed;
3. interrupt what runs on the board and list the SHA-256 of the files the bundle owns there (``main.py``,
   ``bundle.json``, everything under ``lib/``, ``www/``, ``models/default/``; not emlearn's modules in ``lib/``),
   with a small script run by ``mpremote exec`` that reads each file in 512-byte pieces;
4. make missing directories, copy the files whose hash differs or that are missing (``bundle.json`` last, so
   it marks a complete deploy), and delete files in those bundle-owned directories that the bundle no longer has
   (never anything else: the data directory ``/data``, with config, store and uploaded models, is left alone);
   install the emlearn modules that differ into ``lib/``; with ``--romfs``, or by default when the board's
   firmware has a ``romfs`` partition the image fits in (``--no-romfs``: never), write the bundle's ROMFS image
   (``<bundle>.romfs``, made by ``sensorbox build``) into it, and leave the bundle's ``lib/`` modules off the file
   system (they are imported from ``/rom/lib``; the app then needs ``bundle.ROMFS_APP_HEAP``, not ``APP_HEAP``);
5. optionally write ``data/wifi.json`` (``--wifi SSID``; the password from ``SENSORBOX_WIFI_PASSWORD`` or a
   prompt, never printed), the set-up access point's password (``--ap-password``, ``data/ap.json``) and the
   profile's sensor pins into ``data/config.json`` where it has none (``--pins``); a deploy that changed the app
   also clears ``data/app/state.json``, so this app runs and not an earlier over-the-air update;
6. reset the board (``--reset hard``, the default: ``machine.reset()``, which runs the new ``main.py``).

Paths on the board are relative to its working directory: ``/`` on an ESP32. Tests point it at the unix port
run under ``socat`` in a scratch directory (tests/host/test_deploy.py).
"""

import getpass
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from sensorbox.host import boards, bundle

#: What the bundle owns on the board: these files, and everything under these directories.
OWNED_FILES = ("main.py", "bundle.json")
OWNED_DIRS = ("lib", "www", "models/default")

EPILOG = """examples:
  sensorbox deploy /dev/ttyUSB0 --board esp32     check the board, copy what changed, install emlearn's
                                                  modules (from its published builds), reset the board
  sensorbox deploy /dev/ttyUSB0 --board esp32 --dry-run     only check and say what would be done
  sensorbox deploy /dev/ttyACM0 --board esp32c3 --natmods ~/emlearn/dist     emlearn's modules from a folder
                                                  (<arch>_<abi>/emlearn_trees.mpy or emlearn_trees.mpy)
  sensorbox deploy /dev/ttyUSB0 --board esp32s3 --wifi MyNet --pins   also data/wifi.json (password:
                                                  $SENSORBOX_WIFI_PASSWORD or a prompt) and the profile's pins
  sensorbox deploy /dev/ttyUSB0 --board esp32 --romfs      the bundle's modules as a ROMFS image (firmware
                                                  with a romfs partition; `sensorbox build` makes the image)
  sensorbox deploy /dev/ttyUSB0 --board esp32 --ap-password 'a-long-one'   the set-up access point's WPA2
                                                  password (else made at its first start, shown on the console)
  sensorbox deploy --ota http://sensorbox-ab12.local/     update the app over Wi-Fi (signed; rolled back unless
                                                  it stays healthy)
  sensorbox deploy --ota http://bench.local/ --ota-file update.sbu   sign it only, to upload in the web UI
  sensorbox deploy socket://127.0.0.1:7777 --board unix --reset none    the unix port's REPL over TCP (socat)

Only files whose SHA-256 differs are copied, so a second deploy of the same build copies nothing. Files in
lib/, www/ and models/default/ that the bundle no longer has are deleted; the data directory (/data: config,
stored data, uploaded models) is never touched, except data/wifi.json (--wifi) and missing pins (--pins).
Without --board the board is not checked and emlearn's modules are not installed.

boards (--board):
""" + boards.describe() + "\n"

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


# Runs on the board: what deploy checks, as one JSON line.
_PROBE = """
import sys, gc, os, json
gc.collect()
r = {'version': list(sys.implementation.version[:3]), 'mpy': getattr(sys.implementation, '_mpy', 0),
     'machine': getattr(sys.implementation, '_machine', sys.platform), 'platform': sys.platform,
     'heap_free': gc.mem_free(), 'word': 8 if sys.maxsize > 2147483647 else 4, 'romfs': 0}
try:
    s = os.statvfs('.')
    r['fs_block'] = s[0]
    r['fs_free'] = s[0] * s[4]
    r['fs_total'] = s[0] * s[2]
except Exception:
    pass
try:
    import vfs
    if hasattr(vfs, 'rom_ioctl'):
        r['romfs'] = vfs.rom_ioctl(1)
        if r['romfs'] > 0:
            r['romfs_size'] = len(vfs.rom_ioctl(2, 0))
except Exception:
    pass
print('PROBE', json.dumps(r))
"""

# Runs on the board: data/config.json with the keys of PINS added where it has none; prints what it did.
_PINS = """
import os, json
try:
    os.mkdir('data')
except OSError:
    pass
try:
    with open('data/config.json') as f:
        cfg = json.load(f)
except OSError:
    cfg = {}
except ValueError:
    cfg = None
if cfg is None:
    print('PINS bad')
else:
    new = [k for k in sorted(PINS) if k not in cfg]
    for k in new:
        cfg[k] = PINS[k]
    if new:
        with open('data/config.json.tmp', 'w') as f:
            json.dump(cfg, f)
        os.rename('data/config.json.tmp', 'data/config.json')
    print('PINS', ' '.join(new))
"""


class DeployError(Exception):
    pass


def _mpremote():
    exe = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "mpremote"]


def run_mpremote(port, args, timeout=120):
    """Run ``mpremote connect PORT resume ARGS``; returns stdout. DeployError with mpremote's message if it fails."""
    cmd = _mpremote() + ["connect", port, "resume"] + list(args)
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
    if path.startswith("lib/emlearn_"):  # emlearn's native modules: installed by --board, never deleted
        return False
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


def probe(port):
    """What the board says about itself (_PROBE): version, mpy, machine, platform, heap_free, word, fs_*, romfs."""
    out = run_mpremote(port, ["exec", _PROBE])
    for line in out.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    raise DeployError("the board did not answer the probe (output: {!r})".format(out[-300:]))


def app_heap_bytes(word=4, heap=None):
    """The heap the app needs on a board with ``word``-byte words: ``heap`` (default ``bundle.APP_HEAP``; ``152wK``:
    152 K words of 4 bytes, scaled by the word size like MicroPython's ``-X heapsize``)."""
    h = (heap or bundle.APP_HEAP).upper()
    n = float(h.rstrip("KMW"))
    n *= 1024 if "K" in h else (1024 * 1024 if "M" in h else 1)
    return int(n * word / 4) if "W" in h else int(n)


def use_romfs(flag, info, image_bytes):
    """Whether the bundle's code goes into the board's ROMFS partition: ``flag`` True (``--romfs``) or False
    (``--no-romfs``) says so; None (the default) when the board's firmware has a ``romfs`` partition the image
    fits in (``info``: the probe's answer). Stock ESP32 firmware has none: the code goes to the file system."""
    if flag is not None:
        return flag
    return bool(info.get("romfs")) and image_bytes is not None and info.get("romfs_size", 0) >= image_bytes


def check_board(profile, info, force=False, log=print, romfs=False):
    """Refuse (DeployError) a board the profile does not fit: firmware version, .mpy version and ABI, heap (the
    app with its code in ROMFS, ``romfs``, needs less: ``bundle.ROMFS_APP_HEAP``)."""
    name = profile["name"]
    ver = tuple(info.get("version") or (0, 0, 0))
    mv, arch, sub = boards.board_abi(info.get("mpy") or 0)
    log("board: MicroPython {} on {} ({}), .mpy {}.{} {}; {} KB heap free; {} KB of {} KB flash free".format(
        ".".join(str(v) for v in ver), info.get("machine"), info.get("platform"), mv, sub, arch,
        info.get("heap_free", 0) // 1024, info.get("fs_free", 0) // 1024, info.get("fs_total", 0) // 1024))
    if ver < boards.MIN_MICROPYTHON or mv != boards.MPY_VERSION:
        raise DeployError("the board runs MicroPython {} (.mpy v{}): sensorbox needs {} or later (.mpy {}.{}). "
                          "Flash a current {} firmware (micropython.org/download) and deploy again".format(
                              ".".join(str(v) for v in ver), mv, ".".join(str(v) for v in boards.MIN_MICROPYTHON),
                              boards.MPY_VERSION, boards.MPY_SUB_VERSION, profile["firmware"]))
    if arch != profile["arch"] or sub != boards.MPY_SUB_VERSION:
        fits = [n for n, p in boards.PROFILES.items() if p["arch"] == arch]
        raise DeployError("the board's native code is {} (.mpy ABI {}.{}), profile {} is built for {} ({}.{}): "
                          "{}".format(arch, mv, sub, name, profile["arch"], boards.MPY_VERSION,
                                      boards.MPY_SUB_VERSION,
                                      "use --board " + " or --board ".join(fits) if fits and sub ==
                                      boards.MPY_SUB_VERSION else "no profile fits this board"))
    heap, which = (bundle.ROMFS_APP_HEAP, "ROMFS_APP_HEAP") if romfs else (bundle.APP_HEAP, "APP_HEAP")
    need = app_heap_bytes(info.get("word", 4), heap)
    free = info.get("heap_free", 0)
    if profile.get("heap") and free < profile["heap"] // 2:
        log("warning: {} KB heap free, profile {} expects about {} KB: is this the right profile (PSRAM "
            "enabled)?".format(free // 1024, name, profile["heap"] // 1024))
    if free < need:
        msg = ("the board has {} KB of heap free at the REPL, the app needs {} KB (bundle.{} {}); it would run "
               "out of memory (docs/heap.md). Use a board with more RAM".format(
                   free // 1024, need // 1024, which, heap))
        if not force:
            raise DeployError(msg + ", or --force to copy anyway")
        log("warning: " + msg + " (--force: copying anyway)")


def natmod_sources(profile, abi, natmods_dir=None, url=None, log=print):
    """emlearn's native modules for the board: [(module, data, source)] with source a path or URL, each ``.mpy``
    header checked against the board's architecture and ABI (DeployError naming the file otherwise). From
    ``natmods_dir`` (``<arch>_<abi>/<module>.mpy`` or ``<module>.mpy``), else from emlearn's published builds at
    ``url`` (``<url>/<arch>_<abi>/<module>.mpy``). Offline: [] and a note (the device then uses its own kernels)."""
    arch = profile["arch"]
    sub = "{}_{}".format(arch, abi)
    out = []
    for m in boards.NATMODS:
        if natmods_dir:
            for cand in (os.path.join(natmods_dir, sub, m + ".mpy"), os.path.join(natmods_dir, m + ".mpy")):
                if os.path.exists(cand):
                    break
            else:
                raise DeployError("{} not found in {} (looked for {}/{}.mpy and {}.mpy): build or download "
                                  "emlearn-micropython's modules for {} (docs/analysis.md)".format(
                                      m, natmods_dir, sub, m, m, sub))
            with open(cand, "rb") as f:
                data = f.read()
            src = cand
        else:
            if arch not in boards.EMLEARN_ARCHS:
                log("emlearn: no published builds for {}; the device uses its own kernels".format(arch))
                return []
            src = "{}/{}/{}.mpy".format(url.rstrip("/"), sub, m)
            try:
                with urllib.request.urlopen(src, timeout=20) as r:
                    data = r.read()
            except urllib.error.HTTPError as e:
                raise DeployError("emlearn's builds have no {} ({} {}): give --natmods DIR, or another "
                                  "--emlearn-url".format(src, e.code, e.reason))
            except (urllib.error.URLError, OSError) as e:
                log("emlearn: cannot reach {} ({}): modules not installed, the device uses its own kernels; "
                    "give --natmods DIR to install them offline".format(src, getattr(e, "reason", e)))
                return []
        try:
            v, a, s = boards.mpy_header(data)
        except ValueError:
            raise DeployError("{} is not an .mpy file".format(src))
        if v != boards.MPY_VERSION or (a != "none" and (a != arch or s != boards.MPY_SUB_VERSION)):
            raise DeployError("{} is built for {} (.mpy {}.{}), the board needs {} (.mpy {}.{}): get the {} "
                              "build".format(src, a, v, s, arch, boards.MPY_VERSION, boards.MPY_SUB_VERSION, sub))
        out.append((m, data, src))
    return out


def romfs_image(out_dir):
    """Where ``sensorbox build`` writes the bundle's ROMFS image: next to the bundle, ``<bundle>.romfs``."""
    return out_dir.rstrip("/" + os.sep) + ".romfs"


def _write_data(port, name, text):
    # Sent as a literal inside the script: it travels over the serial line only, and is never printed.
    wr = ("import os\ntry:\n    os.mkdir('data')\nexcept OSError:\n    pass\n"
          "with open('data/{}', 'w') as f:\n    f.write({!r})\n").format(name, text)
    run_mpremote(port, ["exec", wr])


def deploy(port, out_dir, dry_run=False, reset="hard", wifi=None, log=print, batch=40, board=None, natmods_dir=None,
           emlearn_url=None, no_natmods=False, romfs=None, pins=False, force=False, ap_password=None):
    """Bring the board at ``port`` to the bundle in ``out_dir``. ``board``: a profile name (boards.PROFILES):
    check the board first and install emlearn's modules. ``romfs``: the code as a ROMFS image (True), on the file
    system (False), or (None) as the board's firmware allows (``use_romfs``; needs ``board``). Returns (copied,
    deleted) path lists (bundle files)."""
    profile = None
    mods = []
    img = None
    info = {}
    if board is not None:
        profile = dict(boards.PROFILES[board], name=board)
        info = probe(port)
        p = romfs_image(out_dir)
        romfs = use_romfs(romfs, info, os.path.getsize(p) if os.path.exists(p) else None)
        if romfs:
            log("code: a ROMFS image in the board's romfs partition ({} KB; --no-romfs: on the file system)".format(
                info.get("romfs_size", 0) // 1024))
        check_board(profile, info, force=force, log=log, romfs=romfs)
        with open(os.path.join(out_dir, "bundle.json")) as f:
            fb = json.load(f).get("flash_bytes", 0)
        if fb > profile["flash_budget"]:
            raise DeployError("the bundle takes {} KB of flash, profile {} allows {} KB".format(
                fb // 1024, board, profile["flash_budget"] // 1024))
        if not no_natmods:
            mods = natmod_sources(profile, "{}.{}".format(boards.MPY_VERSION, boards.MPY_SUB_VERSION),
                                  natmods_dir, emlearn_url or boards.EMLEARN_BUILDS + "/latest", log)
    if romfs:
        img = romfs_image(out_dir)
        if not os.path.exists(img):
            raise DeployError("no ROMFS image at {}: `sensorbox build --target {}` makes it".format(
                img, os.path.basename(out_dir.rstrip("/" + os.sep))))
        if not info:
            info = probe(port)
        if not info.get("romfs"):
            raise DeployError("the board's firmware has no ROMFS partition (MicroPython 1.25 or later with a romfs "
                              "partition, e.g. partitions-4MiB-romfs.csv): deploy without --romfs")
    local = local_files(out_dir)
    if img:  # the bundle's modules come from the image (imported from /rom/lib): none on the file system
        local = {p: h for p, h in local.items() if not p.startswith("lib/")}
    remote = remote_hashes(port)
    copy, delete = plan(local, remote)
    mods = [(m, d, src) for m, d, src in mods if remote.get("lib/" + m + ".mpy") != hashlib.sha256(d).hexdigest()]
    if profile is not None and info.get("fs_free") is not None:
        blk = info.get("fs_block") or bundle.FLASH_BLOCK
        sizes = {p: os.path.getsize(os.path.join(out_dir, p)) for p in copy}
        need = sum(-(-n // blk) * blk for n in sizes.values()) + sum(-(-len(d) // blk) * blk for _, d, _ in mods)
        left = info["fs_free"] - need
        if left < profile["data_min"]:
            raise DeployError("after copying {} KB, {} KB of flash would be left for data; profile {} keeps at least "
                              "{} KB: delete old data or uploaded models, or use a board with more flash".format(
                                  need // 1024, max(left, 0) // 1024, board, profile["data_min"] // 1024))
    log("{}: {} files in the bundle, {} to copy, {} to delete{}".format(
        port, len(local), len(copy), len(delete), " (dry run)" if dry_run else ""))
    for p in copy:
        log("  copy   " + p)
    for p in delete:
        log("  delete " + p)
    for m, d, src in mods:
        log("  emlearn lib/{}.mpy ({} bytes, from {})".format(m, len(d), src))
    if img:
        log("  romfs  {} ({} bytes)".format(img, os.path.getsize(img)))
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
    if mods:
        _install_natmods(port, mods, log)
    if img:
        run_mpremote(port, ["romfs", "deploy", img], timeout=600)
        log("wrote the ROMFS image ({} bytes)".format(os.path.getsize(img)))
    if copy or delete or img:  # the app deployed now runs next, not an earlier over-the-air update (device/ota.py)
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
    if pins and profile is not None and profile["pins"]:
        out = run_mpremote(port, ["exec", "PINS = {!r}\n".format(profile["pins"]) + _PINS])
        if "PINS bad" in out:
            log("  pins: data/config.json does not parse; left as it is (the device reports it at boot)")
        else:
            got = [ln[5:].split() for ln in out.splitlines() if ln.startswith("PINS ")]
            new = got[0] if got else []
            log("  pins: {} into data/config.json{}".format(", ".join(
                "{}={}".format(k, profile["pins"][k]) for k in new) or "none needed", "" if new else
                " (it sets them all)"))
    log("done: {} files copied, {} deleted, {} emlearn module{} installed{}".format(
        len(copy), len(delete), len(mods), "" if len(mods) == 1 else "s", ", ROMFS image written" if img else ""))
    if reset == "hard":
        run_mpremote(port, ["reset"])
        log("reset the board")
    elif reset == "soft":
        run_mpremote(port, ["soft-reset"])
        log("soft-reset the board")
    return copy, delete


def _install_natmods(port, mods, log):
    """Copy local modules into lib/; install downloaded ones with mip from the same URLs; then check every hash."""
    local = [(m, src) for m, _, src in mods if not src.startswith(("http://", "https://"))]
    urls = [src for _, _, src in mods if src.startswith(("http://", "https://"))]
    run_mpremote(port, ["exec", _EACH.format(["lib"], "os.mkdir(p)")])
    if local:
        args = []
        for m, src in local:
            if args:
                args.append("+")
            args += ["fs", "cp", src, ":lib/" + m + ".mpy"]
        run_mpremote(port, args, timeout=600)
    if urls:
        run_mpremote(port, ["mip", "install", "--target", "lib"] + urls, timeout=600)
    remote = remote_hashes(port)
    for m, d, src in mods:
        if remote.get("lib/" + m + ".mpy") != hashlib.sha256(d).hexdigest():
            raise DeployError("lib/{}.mpy on the board is not the file checked ({}): deploy again".format(m, src))
        log("installed lib/{}.mpy ({})".format(m, "mip" if src in urls else "copied"))


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
        if args.board is not None:  # with the Analysis page's runtime when the board's flash has room for it
            out = bundle.build_for(args.board)
            print("the Analysis page's runtime: {}".format(
                "on the board" if bundle.manifest(out)["analysis"] else "not on the board (no room in its flash "
                "budget; `sensorbox ui URL` serves the page from a computer)"))
        else:
            out = bundle.build(args.target, quiet=True)
    except bundle.BuildError as e:
        sys.exit("error: {}".format(e))
    wifi = None
    if args.wifi is not None:
        pw = os.getenv("SENSORBOX_WIFI_PASSWORD")
        if pw is None:
            pw = getpass.getpass("Wi-Fi password for {}: ".format(args.wifi))
        wifi = (args.wifi, pw)
    if args.board is None and (args.natmods or args.pins):
        sys.exit("error: --natmods and --pins need --board NAME (the board's profile)")
    try:
        deploy(args.port, out, dry_run=args.dry_run, reset=args.reset, wifi=wifi, board=args.board,
               natmods_dir=args.natmods, emlearn_url=args.emlearn_url, no_natmods=args.no_natmods, romfs=args.romfs,
               pins=args.pins, force=args.force, ap_password=args.ap_password)
        if args.ota_key:
            from sensorbox.host import ota

            ota.write_key_usb(args.port)
    except DeployError as e:
        sys.exit("error: {}".format(e))
    return 0


def add_parser(sub):
    import argparse

    d = sub.add_parser("deploy", help="check a board, copy the device bundle to it with mpremote (only changed "
                       "files), install emlearn's modules, reset", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("port", metavar="PORT", nargs="?",
                   help="serial port or mpremote device (/dev/ttyUSB0, socket://HOST:PORT); not with --ota")
    d.add_argument("--board", choices=list(boards.PROFILES), help="the board's profile (below): check it, build for "
                   "its architecture, install emlearn's modules")
    d.add_argument("--target", choices=sorted(bundle.TARGETS), default="esp32",
                   help="bundle to deploy without --board (default esp32)")
    d.add_argument("--natmods", metavar="DIR", help="emlearn-micropython's .mpy modules from this folder instead "
                   "of its published builds")
    d.add_argument("--emlearn-url", metavar="URL", help="base of emlearn's published builds (default {}/latest)"
                   .format(boards.EMLEARN_BUILDS))
    d.add_argument("--no-natmods", action="store_true", help="do not install emlearn's modules")
    d.add_argument("--romfs", action="store_true", default=None, help="write the bundle's ROMFS image (from "
                   "`sensorbox build`) into the board's romfs partition (default with --board: when the firmware "
                   "has one the image fits in)")
    d.add_argument("--no-romfs", dest="romfs", action="store_false", help="the code on the file system even when "
                   "the board has a romfs partition")
    d.add_argument("--pins", action="store_true", help="write the profile's sensor pins into data/config.json "
                   "where it has none")
    d.add_argument("--force", action="store_true", help="copy even if the board has less heap than the app needs")
    d.add_argument("--dry-run", action="store_true", help="only check and list what would be copied and deleted")
    d.add_argument("--reset", choices=("hard", "soft", "none"), default="hard",
                   help="how to restart the board afterwards (default hard: machine.reset())")
    d.add_argument("--wifi", metavar="SSID", help="also write data/wifi.json for this network")
    d.add_argument("--ap-password", metavar="PW", type=_ap_password,
                   help="the WPA2 password of the device's set-up access point (8-63 characters; else one is made "
                        "at its first start and printed on its serial console)")
    d.add_argument("--ota", metavar="URL", help="update the app of the device at URL over the network (signed, "
                   "written to its inactive slot, rolled back unless it stays healthy); admin password from "
                   "$SENSORBOX_PASSWORD or asked")
    d.add_argument("--ota-file", metavar="FILE", help="with --ota: write the signed update to FILE instead of "
                   "sending it (to upload on the device's Health page)")
    d.add_argument("--ota-key", action="store_true", help="also write a new update key to the board over USB "
                   "(and keep the host's copy in ~/.config/sensorbox/ota-keys)")
    d.set_defaults(func=cmd_deploy)
