"""App updates with rollback, and firmware updates through ``esp32.Partition`` (loaded per request, then unloaded).

    GET  /api/ota             the running app (slot, version, trial or confirmed, why), the key (set or not), firmware
    POST /api/ota             a signed app bundle (the body, streamed): written to the inactive slot, verified, switched
    PUT  /api/ota/key         {"key": 64 hex digits}: the device's update key, once (admin)
    POST /api/ota/firmware    a signed bundle holding firmware.bin: written to the next OTA partition (ESP32)

An app bundle (``sensorbox deploy --ota``, ``host/ota.py``) is ``SBU1\\n``, a 4-byte header length, the header
(JSON: version, build, arch, mpy (its number), ``files`` as [path, size, sha256]), its HMAC-SHA256 with the device's key
(``ota.key`` in the data directory, 32 bytes), then the files' bytes in that order. The signature is checked before
anything is written; each file's size and SHA-256 as it is written into the inactive slot (``<data>/app/a`` or
``b``); the slot's ``ok`` file is written after the last; then ``app/state.json`` is replaced by a rename: the one
step that switches. Until then the running app is untouched; after it, the new app runs on trial (``main.py``):
it must stay healthy for a minute (``guard``) within ``ota.confirm_s`` (then ``confirm``), or it is rolled back:
by itself when that time passes (``rollback``), by the loader when it crashed or was reset before. The key can be
installed over the network only while none is set (``sensorbox deploy --ota`` does it the first time); after
that only over USB (``sensorbox deploy PORT --ota-key``) or after a factory reset.
"""

import binascii
import hashlib
import json
import os
import struct
import sys
import time

import asyncio
from micropython import const

from sensorbox.device.factory import rmtree
from sensorbox.device.http.server import BadRequest, error, guard, read_json

_SBU = const(b"SBU1\n")
_HEAD_MAX = const(16384)
_CHUNK = const(1024)
_PATHS = ("lib/", "www/", "models/default/", "bundle.json")
_BLOCK = const(4096)


def _root(data):
    return data + "/app/"


def _read_state(data):
    try:
        with open(_root(data) + "state.json") as f:
            s = json.load(f)
        if isinstance(s, dict):
            return s
    except (OSError, ValueError):
        pass
    return {"active": None}


def _write_state(data, s):
    p = _root(data) + "state.json"
    with open(p + ".tmp", "w") as f:
        json.dump(s, f)
    os.rename(p + ".tmp", p)


def running():
    """The slot whose app runs ("a", "b") or None (the bundle's own, from the USB deploy)."""
    p = sys.path[0] if sys.path else ""
    i = p.find("/app/")
    return p[i + 5] if i >= 0 and p.endswith("/lib") and p[i + 5:i + 6] in ("a", "b") else None


def _key(data):
    try:
        with open(data + "/ota.key") as f:
            k = binascii.unhexlify(f.read().strip())
        return k if len(k) == 32 else None
    except (OSError, ValueError):
        return None


async def _mark(device, name):
    print("ota: " + name)  # on the console: the tests kill the device right after each step
    t = getattr(device.platform, "timings", None)  # (the simulated board pauses there)
    await asyncio.sleep_ms(t[2] if t else 0)



def _mkdirs(path):
    cur = ""
    for part in path.split("/"):
        cur = cur + "/" + part if cur or path.startswith("/") else part
        if part:
            try:
                os.mkdir(cur)
            except OSError:
                pass


class _Body:
    """The request body, read as it arrives (what ``server`` read already first), never more than it said."""

    def __init__(self, req):
        self._pre = req.body
        self._left = req.content_length - len(req.body)
        self._src = req.sock[0]

    async def read(self, n):
        out = b""
        if self._pre:
            out = self._pre[:n]
            self._pre = self._pre[n:]
        while len(out) < n:
            if self._left <= 0:
                raise BadRequest("the upload ended early (a bundle cut short?)")
            c = await self._src.read(min(n - len(out), self._left, _CHUNK))
            if not c:
                raise BadRequest("the upload ended early (a bundle cut short?)")
            self._left -= len(c)
            out += c
        return out

    def rest(self):
        """Bytes of the body not read yet."""
        return self._left + len(self._pre)

    async def drain(self):
        """Read what is left and drop it, so that the client, still sending, gets the answer (not a reset)."""
        self._pre = b""
        while self._left > 0:
            c = await self._src.read(min(self._left, _CHUNK))
            if not c:
                break
            self._left -= len(c)


async def _header(data, body):
    from sensorbox.device.integrations.httpc import Hmac

    k = _key(data)
    if k is None:
        return None, error(409, "no update key on this device: install one with `sensorbox deploy --ota URL` "
                                "(the first time) or over USB (`sensorbox deploy PORT --ota-key`)", "key")
    if await body.read(len(_SBU)) != _SBU:
        raise BadRequest("not a sensorbox update bundle (bad magic)")
    n = struct.unpack(">I", await body.read(4))[0]
    if not 2 <= n <= _HEAD_MAX:
        raise BadRequest("bad bundle header length {}".format(n))
    raw = await body.read(n)
    sig = await body.read(32)
    want = Hmac(k).digest(raw)
    diff = 0
    for i in range(32):
        diff |= sig[i] ^ want[i]
    if diff:
        return None, error(403, "bad signature: this bundle was not signed with this device's update key", "key")
    try:
        h = json.loads(raw)
        files = h["files"]
        total = 0
        for f in files:
            total += f[1]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise BadRequest("bad bundle header ({})".format(e))
    return h, total


def _check_path(p):
    if not isinstance(p, str) or ".." in p or p.startswith("/") or "//" in p or not any(
            p == x or (x.endswith("/") and p.startswith(x)) for x in _PATHS):
        raise BadRequest("bundle path not allowed: {!r}".format(p))


async def _write_file(body, path, size, sha):
    h = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left > 0:
            c = await body.read(min(left, _CHUNK))
            h.update(c)
            f.write(c)
            left -= len(c)
            await asyncio.sleep_ms(0)
    if binascii.hexlify(h.digest()).decode() != sha:
        raise BadRequest("SHA-256 of {} does not match the bundle's header".format(path.rpartition("/app/")[2]))


async def _install(device, req, body):
    """POST /api/ota: the signed app bundle in the body, into the inactive slot, then the switch."""
    data = device.platform.data_dir
    h, total = await _header(data, body)
    if h is None:
        return total  # the refusal
    mine = (getattr(sys.implementation, "_mpy", 0) >> 10) & 0x3F
    if h.get("mpy", mine) != mine:
        return error(400, "this bundle is for {}; this device runs {}".format(h.get("arch"), device.platform.name),
                     "arch")
    left = body.rest()
    if left != total:
        return error(400, "wrong size: the header lists {} bytes of files, the upload has {}".format(total, left),
                     "size")
    for f in h["files"]:
        _check_path(f[0])
    st = _read_state(data)
    if st.get("trial"):
        return error(409, "an update is on trial; wait until it is confirmed or rolled back", "state")
    cur = running()
    slot = "b" if cur == "a" else "a"
    root = _root(data)
    _mkdirs(root[:-1])
    await _mark(device, "writing slot " + slot)
    rmtree(root + slot)
    try:
        for f in h["files"]:
            p = root + slot + "/" + f[0]
            _mkdirs(p[:p.rfind("/")])
            await _write_file(body, p, f[1], f[2])
        await _mark(device, "files verified")
        with open(root + slot + "/ok", "w") as f:
            json.dump({"version": h.get("version"), "build": h.get("build")}, f)
    except BaseException:
        rmtree(root + slot)  # half an app is never left in a slot
        raise
    await _mark(device, "slot complete")
    _write_state(data, {"active": slot, "good": cur, "trial": True, "tried": False, "version": h.get("version"),
                        "build": h.get("build"), "why": "update {} installed in slot {}".format(h.get("version"), slot),
                        "at": device.platform.epoch_ms()})
    await _mark(device, "state switched")
    device.log.warning("app", "update {} installed in slot {}: restarting into it (on trial)".format(
        h.get("version"), slot))
    _restart(device)
    return {"slot": slot, "version": h.get("version"), "build": h.get("build"), "restarting": True}


def _restart(device):
    async def later():
        await asyncio.sleep_ms(300)
        device.log.flush()
        device.platform.reset()

    asyncio.create_task(later())


async def _firmware(device, req, body):
    """POST /api/ota/firmware: a signed bundle whose one file is ``firmware.bin``, into the next OTA partition."""
    try:
        from esp32 import Partition
    except ImportError:
        return error(404, "no OTA partitions on this platform ({})".format(device.platform.name))
    data = device.platform.data_dir
    h, total = await _header(data, body)
    if h is None:
        return total
    files = h["files"]
    if len(files) != 1 or files[0][0] != "firmware.bin" or body.rest() != total:
        raise BadRequest("a firmware bundle holds firmware.bin only, with the size its header says", "size")
    part = Partition(Partition.RUNNING).get_next_update()
    size = files[0][1]
    if size > part.info()[3]:
        return error(413, "firmware of {} bytes does not fit the {} partition ({} bytes)".format(
            size, part.info()[4], part.info()[3]))
    await _mark(device, "writing partition " + part.info()[4])
    buf = bytearray(_BLOCK)
    hs = hashlib.sha256()
    block = 0
    left = size
    while left > 0:
        n = min(left, _BLOCK)
        c = await body.read(n)
        hs.update(c)
        buf[:n] = c
        for i in range(n, _BLOCK):
            buf[i] = 0xFF
        part.ioctl(6, block)  # erase, then write the block
        part.writeblocks(block, buf)
        block += 1
        left -= n
        await asyncio.sleep_ms(0)
    if binascii.hexlify(hs.digest()).decode() != files[0][2]:
        return error(400, "SHA-256 of firmware.bin does not match the bundle's header", "sha256")
    try:
        part.set_boot()  # ESP-IDF checks the image; a bad one is refused and never booted
    except OSError as e:
        return error(400, "the bootloader refused the image ({})".format(e), "firmware")
    st = _read_state(data)
    st["firmware"] = {"partition": part.info()[4], "version": h.get("version"), "pending": True}
    _mkdirs(_root(data)[:-1])
    _write_state(data, st)
    await _mark(device, "firmware switched")
    device.log.warning("app", "firmware {} written to {}: restarting into it".format(h.get("version"), part.info()[4]))
    _restart(device)
    return {"partition": part.info()[4], "version": h.get("version"), "restarting": True}


def status(device):
    """At boot: ``device.app`` (``/api/status`` -> ``app``: which app runs and why, kept in RAM and updated here)
    and the ticks_ms by which an update on trial must be healthy (None when none is)."""
    data = device.platform.data_dir
    st = _read_state(data)
    slot = running()
    ver = build = None
    if slot is not None:
        try:
            with open(_root(data) + slot + "/ok") as f:
                ok = json.load(f)
            ver, build = ok.get("version"), ok.get("build")
        except (OSError, ValueError):
            pass
    trial = bool(st.get("trial")) and st.get("active") == slot
    a = {"slot": slot or "bundle", "version": ver or __import__("sensorbox").__version__, "build": build,
         "trial": trial, "why": st.get("why"), "key": "set" if _key(data) else "not set"}
    try:
        from esp32 import Partition

        a["firmware"] = {"running": Partition(Partition.RUNNING).info()[4], "update": st.get("firmware")}
    except ImportError:
        pass
    device.app = a
    if trial or (st.get("firmware") or {}).get("pending"):
        return time.ticks_add(time.ticks_ms(), device.config.get("ota.confirm_s") * 1000)
    return None


def confirm(device):
    """The running app (or firmware) stayed healthy: an update on trial is kept."""
    data = device.platform.data_dir
    st = _read_state(data)
    changed = False
    if st.get("trial") and st.get("active") == running():
        st["trial"] = st["tried"] = False
        st["good"] = st["active"]
        st["why"] = "update {} (slot {}) confirmed healthy".format(st.get("version"), st["active"])
        changed = True
    fw = st.get("firmware")
    if fw and fw.get("pending"):
        try:
            from esp32 import Partition

            Partition.mark_app_valid_cancel_rollback()
            fw["pending"] = False
            changed = True
        except (ImportError, OSError):
            pass
    if changed:
        _write_state(data, st)
        device.log.info("app", st.get("why") or "firmware confirmed")
        device.app["trial"] = False
        device.app["why"] = st.get("why")
        if fw and "firmware" in device.app:
            device.app["firmware"]["update"] = fw



def rollback(device, why):
    """Give up the app on trial (not healthy in time): back to the one that was good, then a reset. A firmware on
    trial is left to the bootloader, which goes back to the previous one when it boots unconfirmed."""
    data = device.platform.data_dir
    st = _read_state(data)
    if st.get("trial"):
        st["why"] = "rolled back from update {} (slot {}): {}".format(st.get("version"), st.get("active"), why)
        st["active"] = st.get("good")
        st["trial"] = st["tried"] = False
        _write_state(data, st)
    device.log.error("app", st.get("why") or why)
    device.log.flush()
    device.platform.reset()


async def handle(device, app, req):
    p = req.path
    m = req.method
    routes = {"/api/ota": ("GET", "POST"), "/api/ota/key": ("PUT",), "/api/ota/firmware": ("POST",)}
    if p not in routes:
        return error(404, "no such endpoint: {}".format(p))
    if m not in routes[p]:
        return error(405, "method {} not allowed here".format(m))
    refused = await guard(req, admin=m != "GET")
    if refused is not None:
        return refused
    if m == "GET":
        return device.app
    if p == "/api/ota/key":
        data = device.platform.data_dir
        if _key(data) is not None:
            return error(409, "an update key is set; it can be replaced only over USB (`sensorbox deploy PORT "
                              "--ota-key`) or after a factory reset", "key")
        b = read_json(req)
        k = b.get("key") if isinstance(b, dict) else None
        try:
            ok = isinstance(k, str) and len(binascii.unhexlify(k)) == 32
        except ValueError:
            ok = False
        if not ok:
            raise BadRequest("key: 64 hex digits (32 bytes)", "key")
        with open(data + "/ota.key.tmp", "w") as f:
            f.write(k)
        os.rename(data + "/ota.key.tmp", data + "/ota.key")
        device.log.warning("app", "update key installed")
        device.app["key"] = "set"
        return {"key": "set"}
    body = _Body(req)
    try:
        res = await (_firmware if p == "/api/ota/firmware" else _install)(device, req, body)
    except BadRequest:
        await body.drain()
        raise
    if getattr(res, "status_code", 200) >= 400:
        await body.drain()
    return res
