"""App updates with rollback, and firmware updates through ``esp32.Partition`` (loaded per request, then unloaded).

    POST /api/ota             a signed app bundle (the body, streamed): written to the inactive slot, verified, switched
    PUT  /api/ota/key         {"key": 64 hex digits}: the device's update key, once (admin)
    POST /api/ota/firmware    a signed bundle holding firmware.bin: written to the next OTA partition (ESP32)

An app bundle (``sensorbox deploy --ota``, ``host/ota.py``) is ``SBU1\\n``, a 4-byte header length, the header
(JSON: version, build, arch, mpy (its number), ``files`` as [path, size, sha256]), its HMAC-SHA256 with the device's key
(``update.key`` in the data directory, 32 bytes), then the files' bytes in that order. The signature is checked before
anything is written; each file's size and SHA-256 as it is written into the inactive slot (``<data>/app/a`` or
``b``); the slot's ``ok`` file is written after the last; then ``app/state.json`` is replaced by a rename: the one
step that switches. Until then the running app is untouched; after it, the new app runs on trial (``main.py``):
it must stay healthy for a minute (the health guard, ``supervisor.tick``) within 10 minutes (then
``confirm``), or it is rolled back: by itself when that time passes (``rollback``; both called by
``bootstate.update``), by the
loader when it crashed or was reset before. The key can be
installed over the network only while none is set (``sensorbox deploy --ota`` does it the first time); after
that only over USB (``sensorbox deploy PORT --ota-key``) or after a factory reset.
"""

import binascii
import hashlib
import json
import os
import sys

import asyncio
from micropython import const

from sensorbox.device.bootstate import read_state, running, trial, update_key, write_state
from sensorbox.device.files import rmtree
from sensorbox.device.http.server import BadRequest, error, guard, not_allowed, read_json
from sensorbox.device.integrations.httpc import Hmac  # (here, not in _header: lazy unloads what ota's load pulls in)

_SBU = const(b"SBU1\n")
_HEAD_MAX = const(16384)
_CHUNK = const(1024)
_PATHS = ("lib/", "www/", "models/default/", "bundle.json")
_BLOCK = const(4096)


async def _mark(device, name):
    print("ota: {}".format(name))  # on the console: the tests kill the device right after each step
    await asyncio.sleep_ms(device.supervisor.ms[2])  # (the simulated board pauses there)


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
        self._src = req.sock[0]  # (the server's connection: its readexactly keeps the idle deadline away)

    async def _more(self, k):
        try:
            c = await self._src.readexactly(k)
        except EOFError:
            c = b""
        if len(c) < k:
            raise BadRequest("the upload ended early (a bundle cut short?)")
        self._left -= k
        return c

    async def read(self, n):
        out = b""
        if self._pre:
            out = self._pre[:n]
            self._pre = self._pre[n:]
        while len(out) < n:
            if self._left <= 0:
                raise BadRequest("the upload ended early (a bundle cut short?)")
            out += await self._more(min(n - len(out), self._left, _CHUNK))
        return out

    def _rest(self):
        """Bytes of the body not read yet."""
        return self._left + len(self._pre)

    async def drain(self):
        """Read what is left and drop it, so that the client, still sending, gets the answer (not a reset)."""
        self._pre = b""
        try:
            while self._left > 0:
                await self._more(min(self._left, _CHUNK))
        except BadRequest:
            pass


async def _header(data, body):
    k = update_key(data)
    if k is None:
        return None, error(409, "no update key on this device: install one with `sensorbox deploy --ota URL` "
                                "(the first time) or over USB (`sensorbox deploy PORT --ota-key`)", "key")
    if await body.read(len(_SBU)) != _SBU:
        raise BadRequest("not a sensorbox update bundle (bad magic)")
    n = int.from_bytes(await body.read(4), "big")
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


async def _write_file(body, path, size, digest):
    h = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left > 0:
            c = await body.read(min(left, _CHUNK))
            h.update(c)
            f.write(c)
            left -= len(c)
            await asyncio.sleep_ms(0)
    if binascii.hexlify(h.digest()).decode() != digest:
        raise BadRequest("SHA-256 of {} does not match the bundle's header".format(path.rpartition("/app/")[2]))


async def _install(device, req, body):
    """POST /api/ota: the signed app bundle in the body, into the inactive slot, then the switch."""
    data = device.platform.data_dir
    h, total = await _header(data, body)
    if h is None:
        return total  # the refusal
    mine = (getattr(sys.implementation, "_mpy", 0) >> 10) & 0x3F
    if h.get("mpy", mine) != mine:
        return error(400, "this bundle is for another processor (.mpy {}); this device runs {} (.mpy {})".format(
            h.get("mpy"), device.platform.name, mine), "arch")
    left = body._rest()
    if left != total:
        return error(400, "wrong size: the header lists {} bytes of files, the upload has {}".format(total, left),
                     "size")
    for f in h["files"]:
        _check_path(f[0])
    st = read_state(data)
    if st.get("trial"):
        return error(409, "an update is on trial; wait until it is confirmed or rolled back", "state")
    cur = running()
    slot = "b" if cur == "a" else "a"
    root = data + "/app/"
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
    trial(data)  # (an update sent in safe mode boots normally: bootstate.trial)
    write_state(data, {"active": slot, "previous": cur, "trial": True, "started": False, "version": h.get("version"),
                        "build": h.get("build"), "why": "update {} installed in slot {}".format(h.get("version"), slot),
                        "t": device.platform.epoch_ms()})
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
    if len(files) != 1 or files[0][0] != "firmware.bin" or body._rest() != total:
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
    trial(data)  # (an update sent in safe mode boots normally: bootstate.trial)
    st = read_state(data)
    st["firmware"] = {"partition": part.info()[4], "version": h.get("version"), "pending": True}
    _mkdirs(data + "/app")
    write_state(data, st)
    await _mark(device, "firmware switched")
    device.log.warning("app", "firmware {} written to {}: restarting into it".format(h.get("version"), part.info()[4]))
    _restart(device)
    return {"partition": part.info()[4], "version": h.get("version"), "restarting": True}


async def handle(device, app, req):
    p = req.path[9:]  # after /api/ota/ (server.route sent only /api/ota and what is under it)
    m = req.method
    routes = {"": ("POST",), "key": ("PUT",), "firmware": ("POST",)}  # (which app runs: /api/status -> app)
    if m not in routes.get(p, ()):
        return not_allowed(req)  # (405 with Allow, or 404)
    refused = await guard(req, admin=True)
    if refused is not None:
        return refused
    if p == "key":
        data = device.platform.data_dir
        if update_key(data) is not None:
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
        with open(data + "/update.key.tmp", "w") as f:
            f.write(k)
        os.rename(data + "/update.key.tmp", data + "/update.key")
        device.log.warning("app", "update key installed")
        if getattr(device, "app", None) is None:
            device.app = {"slot": None, "version": __import__("sensorbox").__version__, "build": None,
                          "trial": False, "why": None}
        device.app["key"] = True
        return {"key": True}
    body = _Body(req)
    try:
        res = await (_firmware if p == "firmware" else _install)(device, req, body)
    except BadRequest:
        await body.drain()
        raise
    if getattr(res, "status_code", 200) >= 400:
        await body.drain()
    return res


def confirm(d):
    """The running app (or firmware) stayed healthy: an update on trial is kept, and the other slot (the app
    before it, nothing to go back to now) is deleted: its flash is free until the next update."""
    data = d.platform.data_dir
    st = read_state(data)
    changed = False
    old = None
    if st.get("trial") and st.get("active") == running():
        st["trial"] = st["started"] = False
        st["previous"] = st["active"]
        st["why"] = "update {} (slot {}) confirmed healthy".format(st.get("version"), st["active"])
        changed = True
        old = "b" if st["active"] == "a" else "a"
    fw = st.get("firmware")
    if fw and fw.get("pending"):
        try:
            d.platform.firmware(True)  # the bootloader keeps it
            fw["pending"] = False
            changed = True
        except (AttributeError, OSError):
            pass
    if changed:
        write_state(data, st)
        d.log.info("app", st.get("why") or "firmware confirmed")
        if old is not None:  # (after the state: a power cut in between leaves a slot nothing points to)
            ok = "{}/app/{}/ok".format(data, old)
            try:
                os.remove(ok)  # first: never a slot marked complete with files missing
            except OSError:
                pass
            rmtree(ok[:-3])
        d.app["trial"] = False
        d.app["why"] = st.get("why")
        if fw and "firmware" in d.app:
            d.app["firmware"]["update"] = fw


def rollback(d, why):
    """Give up the app on trial (not healthy in time): back to the one that was good, then a reset. A firmware on
    trial is left to the bootloader, which goes back to the previous one when it boots unconfirmed."""
    data = d.platform.data_dir
    st = read_state(data)
    if st.get("trial"):
        st["why"] = "rolled back from update {} (slot {}): {}".format(st.get("version"), st.get("active"), why)
        st["active"] = st.get("previous")
        st["trial"] = st["started"] = False
        write_state(data, st)
    d.log.error("app", st.get("why") or why)
    d.log.flush()
    d.platform.reset()
