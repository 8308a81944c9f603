"""Device authentication: the admin password, kept only as a salted, iterated SHA-256 hash in ``auth.json``.

First start: the password is taken from the platform (``SENSORBOX_ADMIN_PASSWORD`` on the unix port) or made
up at random and printed once on the console; it is never logged or written in clear. Requests authenticate
with HTTP Basic (user ``admin``). Verifying a password costs ``ITERATIONS`` hashes, so a verified credential is
remembered (by its SHA-256, never in clear). A wrong guess makes further logins *from the same client address*
wait ``auth_check._LOCKOUT_MS`` (doubling with each failure, up to a minute; after a quiet minute it starts again from
that): a stranger guessing cannot lock the owner out from another address, and a credential already
verified is accepted from any address. The addresses are kept in a small fixed table (``_PEERS``; a new one
takes the entry of the address that failed longest ago), so a flood of addresses costs no memory.

Also, for the web UI and scripts (code in ``http/authz.py`` and ``http/device_api.py``, loaded per request, so a
device nobody browses pays nothing for them; they keep their state on the ``Auth`` object):

- Sessions: the UI's login (``POST /api/login``, checked through ``check_basic`` so it shares its lockout) makes
  a random session id, sent as an ``HttpOnly; SameSite=Strict`` cookie; RAM keeps only its SHA-256
  (``auth.sessions``: a few, oldest dropped, expiring when idle). A CSRF token derived from the session id must
  come in ``X-CSRF-Token`` with every state-changing request.
- API tokens (``Authorization: Bearer sb_<id>_<secret>``) with a scope, ``read`` or ``admin``: made and revoked
  by the admin, kept in ``tokens.json`` as the SHA-256 of a 128-bit random secret (never in clear), shown once.
"""

import binascii
import hashlib
import json
import os
import time

import asyncio
from micropython import const

ITERATIONS = const(2000)
_PEERS = const(8)  # client addresses whose failed logins are remembered (the lockout's figures: auth_check.py)
_CHECK = "sensorbox.device.auth_check"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alike characters


def _pw_hash(salt, password, iterations):
    h = hashlib.sha256(salt + password).digest()
    for _ in range(iterations - 1):
        h = hashlib.sha256(salt + h).digest()
    return h


def new_password(length=16):
    raw = os.urandom(length)
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in raw)


class Auth:
    def __init__(self, path, log, initial_password=None):
        self.path = path
        self.log = log
        self._verified = []  # sha256 of credentials already checked (bounded)
        self._lock = None  # one password check at a time (made on first use, inside the event loop)
        self._peer = [None] * _PEERS  # a client address (server.peer_key) with failed logins...
        self._until = [0] * _PEERS  # ...the ticks_ms until which its logins wait...
        self._fails = bytearray(_PEERS)  # ...and its failures in a row
        self.generation = 0  # counts password changes: what a credential checked earlier is still valid for
        self.generated_password = None
        from sensorbox.device import lazy

        # anything but a valid auth.json (not UTF-8, wrong types, a directory) is set aside as .bad
        d = lazy.call("sensorbox.device.files", "load_json", path, log, "auth_ok")
        if d is not None:
            self._salt = binascii.unhexlify(d["salt"])
            self._digest = binascii.unhexlify(d["hash"])
            self._iterations = d["iterations"]
        else:
            if log.files and path in log.files[-1]:
                log.error("auth", "setting a new admin password: {} was unreadable".format(path))
            pw = initial_password or new_password()
            if not initial_password:
                self.generated_password = pw
            self.set_password(pw)

    def set_password(self, password):
        self._salt = os.urandom(16)
        self._iterations = ITERATIONS
        self._digest = _pw_hash(self._salt, password.encode(), self._iterations)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"salt": binascii.hexlify(self._salt).decode(), "hash": binascii.hexlify(self._digest).decode(),
                       "iterations": self._iterations}, f)
        os.rename(tmp, self.path)
        self._verified = []
        self.generation += 1
        self.sessions = []  # a new password ends every session (and, with them, their live streams)

    async def check_basic(self, header, peer=None):
        """Check an ``Authorization: Basic ...`` header sent from client address ``peer``. Returns "admin", None
        (wrong or absent) or "wait" (this address is locked out after a failure). A credential not seen before
        costs ``ITERATIONS`` hashes: they run in slices of ``auth_check._SLICE`` with a yield between (~0.5 ms each
        here, ~10 ms on an ESP32), one check at a time, so guesses sent together still meet the lockout one by one."""
        if not header or not header.startswith("Basic "):
            return None
        key = hashlib.sha256(header.encode()).digest()
        if key in self._verified:
            return "admin"
        if self._locked(peer):  # (before queueing for the lock: a locked-out guesser holds nobody up)
            return "wait"
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if key in self._verified:
                return "admin"
            from sensorbox.device import lazy

            # rarely needed: a credential this boot has not verified yet
            return await lazy.call(_CHECK, "check", self, header, key, peer)

    def _find(self, peer):
        for i in range(_PEERS):
            if self._fails[i] and self._peer[i] == peer:
                return i
        return -1

    def _locked(self, peer):
        i = self._find(peer)
        return i >= 0 and time.ticks_diff(self._until[i], time.ticks_ms()) > 0
