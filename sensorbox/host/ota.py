"""Over-the-air app updates from the host: ``sensorbox deploy --ota URL`` (and ``--ota-file``, ``--ota-key``).

A signed update bundle (the device side is ``sensorbox/device/ota.py``) is ``SBU1\\n``, the header's length (4 bytes,
big-endian), the header (JSON: version, build, target, arch, mpy (the arch's number), ``files`` as [path, size, sha256 hex]), the
header's HMAC-SHA256 with the device's update key, then the files' bytes in the header's order. The app's files
are the bundle's ``lib/``, ``www/``, ``models/default/`` and ``bundle.json`` (``main.py``, the loader, is never
replaced over the air).

Keys: one per device, 32 random bytes, kept on the host in ``~/.config/sensorbox/ota-keys/<device id>.key``
(``SENSORBOX_KEYS`` for another folder) and on the device in ``update.key``. ``--ota URL`` installs the host's key on
a device that has none (``PUT /api/ota/key``: allowed once); ``sensorbox deploy PORT --ota-key`` writes it over USB
(and so replaces it).
"""

import binascii
import hashlib
import hmac
import json
import os
import sys
import time

from sensorbox.host import bundle

MAGIC = b"SBU1\n"
APP_DIRS = ("lib", "www", "models/default")
_ARCH_IDS = {"x64": 2, "xtensawin": 10, "rv32imc": 11}  # the arch numbers of .mpy headers (py/persistentcode.h)


class OtaError(Exception):
    pass


def keys_dir():
    return os.environ.get("SENSORBOX_KEYS") or os.path.join(os.path.expanduser("~"), ".config", "sensorbox",
                                                            "ota-keys")


def key_for(device_id, create=False):
    """The host's update key for ``device_id`` (bytes), made when ``create`` and there is none; else None."""
    p = os.path.join(keys_dir(), device_id + ".key")
    try:
        with open(p) as f:
            return binascii.unhexlify(f.read().strip())
    except FileNotFoundError:
        if not create:
            return None
    os.makedirs(os.path.dirname(p), mode=0o700, exist_ok=True)
    k = os.urandom(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(binascii.hexlify(k).decode())
    return k


def app_files(out_dir):
    """[(path in the bundle, absolute path)] of the app's files, in a stable order."""
    out = []
    for d in APP_DIRS:
        for root, dirs, files in os.walk(os.path.join(out_dir, d)):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(root, f)
                out.append((os.path.relpath(p, out_dir).replace(os.sep, "/"), p))
    out.append(("bundle.json", os.path.join(out_dir, "bundle.json")))
    return out


def pack(out_dir, key, version=None, files=None, target=None):
    """The signed update bundle (bytes) of the bundle directory ``out_dir``; ``files`` ([(name, bytes)]) instead
    of its app files (a firmware bundle: [("firmware.bin", data)])."""
    with open(os.path.join(out_dir, "bundle.json")) as f:
        man = json.load(f)
    if files is None:
        files = []
        for rel, p in app_files(out_dir):
            with open(p, "rb") as f:
                files.append((rel, f.read()))
    entries = [[n, len(b), hashlib.sha256(b).hexdigest()] for n, b in files]
    build = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:12]
    head = {"version": version or man.get("version"), "build": build, "target": target or man.get("target"),
            "arch": man.get("arch"), "mpy": _ARCH_IDS.get(man.get("arch")), "files": entries}
    raw = json.dumps(head, separators=(",", ":")).encode()
    sig = hmac.new(key, raw, hashlib.sha256).digest()
    return MAGIC + len(raw).to_bytes(4, "big") + raw + sig + b"".join(b for _, b in files)


def _request(url, method, path, body=None, password=None, content_type="application/json", timeout=60,
             progress=None):
    """(status, parsed JSON body) of a request to the device at ``url``; the body sent in 4 KB pieces, with
    ``progress(sent, total)`` after each."""
    import base64
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    c = (http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection)(
        u.hostname, u.port or (443 if u.scheme == "https" else 80), timeout=timeout)
    h = {}
    if password is not None:
        h["Authorization"] = "Basic " + base64.b64encode(("admin:" + password).encode()).decode()
    try:
        c.putrequest(method, path)
        for k, v in h.items():
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Type", content_type)
            c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        if body is not None:
            for i in range(0, len(body), 4096):
                c.send(body[i:i + 4096])
                if progress:
                    progress(min(i + 4096, len(body)), len(body))
        r = c.getresponse()
        data = r.read()
    except OSError as e:
        raise OtaError("cannot reach {}: {}".format(url, e))
    finally:
        c.close()
    try:
        j = json.loads(data) if data else {}
    except ValueError:
        j = {"error": data[:200].decode(errors="replace")}
    if r.status == 401:
        raise OtaError("the device wants the admin password: --password or $SENSORBOX_PASSWORD")
    if r.status >= 400:
        raise OtaError("the device refused it ({}): {}".format(r.status, j.get("error")))
    return j


def deploy_ota(url, out_dir, password=None, version=None, save=None, log=print, wait=True, path="/api/ota"):
    """Sign the bundle in ``out_dir`` for the device at ``url`` and send it (or write it to ``save``); then wait
    until the device runs it (or rolled it back). Returns the device's ``app`` status (or the upload's answer)."""
    st = _request(url, "GET", "/api/status", password=password)
    dev_id = st["device"]["id"]
    app = st.get("app") or {}
    k = key_for(dev_id, create=app.get("key") is False)
    if k is None:
        raise OtaError("no update key for device {} in {}: it has one already (made by another host or over "
                       "USB). Copy that key file here, or write a new one over USB: sensorbox deploy PORT "
                       "--ota-key".format(dev_id, keys_dir()))
    if app.get("key") is False:  # (the device has none: this host's is installed)
        _request(url, "PUT", "/api/ota/key", json.dumps({"key": binascii.hexlify(k).decode()}).encode(),
                 password=password)
        log("installed this host's update key on device {} (kept in {})".format(dev_id, keys_dir()))
    data = pack(out_dir, k, version=version)
    if save:
        with open(save, "wb") as f:
            f.write(data)
        log("wrote {} ({:.1f} KB), signed for device {}: upload it on the device's Health page".format(
            save, len(data) / 1024, dev_id))
        return None
    tty = sys.stderr.isatty()

    def bar(sent, total):
        if tty:
            n = 30 * sent // total
            sys.stderr.write("\r  [{}{}] {:3d} %".format("#" * n, "." * (30 - n), 100 * sent // total))
            if sent == total:
                sys.stderr.write("\n")

    log("sending {:.1f} KB to {} ...".format(len(data) / 1024, url))
    r = _request(url, "POST", path, data, password=password, content_type="application/octet-stream",
                 timeout=300, progress=bar)
    log("device: update {} (build {}) in slot {}; restarting into it".format(r["version"], r["build"], r["slot"]))
    if not wait:
        return r
    t0 = time.time()
    while time.time() - t0 < 180:
        time.sleep(1)
        try:
            a = _request(url, "GET", "/api/status", password=password, timeout=5).get("app") or {}
        except OtaError:  # restarting
            continue
        if a.get("build") == r["build"]:
            log("running update {} (build {}) in slot {}{}".format(a["version"], a["build"], a["slot"],
                ", on trial: it is kept once it stays healthy" if a.get("trial") else ", confirmed"))
            return a
        if (a.get("why") or "").startswith("rolled back"):
            raise OtaError(a["why"])
    raise OtaError("the device did not come back with the update within 180 s")


def write_key_usb(port, device_id_hint=None, log=print):
    """``sensorbox deploy PORT --ota-key``: a new key into the board's data/update.key over the serial line and into
    this host's key folder (under the board's id, read from it)."""
    from sensorbox.host import deploy

    out = deploy.run_mpremote(port, ["exec", "import machine, binascii; print(binascii.hexlify(machine.unique_id())"
                                              ".decode())"])
    dev_id = device_id_hint or out.strip().splitlines()[-1].strip()
    p = os.path.join(keys_dir(), dev_id + ".key")
    if os.path.exists(p):
        os.remove(p)
    k = key_for(dev_id, create=True)
    deploy._write_data(port, "update.key", binascii.hexlify(k).decode())
    log("  wrote  data/update.key (a new update key; the host's copy is {})".format(p))
    return dev_id


def cmd(args, password):
    """``sensorbox deploy --ota URL [--ota-file FILE]``."""
    try:
        board = getattr(args, "board", None)  # a profile: its bundle, as `deploy PORT --board` copies it
        out = bundle.build_for(board) if board else bundle.build(args.target, quiet=True)
        deploy_ota(args.ota, out, password=password, save=args.ota_file)
    except (OtaError, bundle.BuildError) as e:
        sys.exit("error: {}".format(e))
    return 0
