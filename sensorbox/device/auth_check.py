"""Verifying a Basic credential this boot has not verified yet, and the per-address lockout's bookkeeping
(``Auth.check_basic``, which loads this module for the call: a device whose clients' credentials are already
verified never carries it)."""

import binascii
import hashlib
import time

import asyncio

from micropython import const

_SLICE = const(250)  # hashes between yields while a password is checked
_LOCKOUT_MS = const(500)
_LOCKOUT_MAX_MS = const(60000)


async def check(auth, header, key, peer):
    if auth._locked(peer):
        return "wait"
    try:
        user, _, password = binascii.a2b_base64(header[6:]).decode().partition(":")
    except (ValueError, UnicodeError):
        return None
    h = hashlib.sha256(auth._salt + password.encode()).digest()
    for i in range(auth._iterations - 1):
        h = hashlib.sha256(auth._salt + h).digest()
        if i % _SLICE == _SLICE - 1:
            await asyncio.sleep_ms(0)
    i = auth._find(peer)
    if user == "admin" and h == auth._digest:
        if i >= 0:
            auth._fails[i] = 0
        auth._verified.append(key)
        if len(auth._verified) > 4:
            auth._verified.pop(0)
        return "admin"
    now = time.ticks_ms()
    if i < 0:  # a new address: the entry of the one that failed longest ago (or a free one)
        i = 0
        for j in range(len(auth._fails)):
            if not auth._fails[j]:
                i = j
                break
            if time.ticks_diff(auth._until[j], auth._until[i]) < 0:
                i = j
        auth._peer[i] = peer
        auth._fails[i] = 0
    # The wait doubles with each failure, but a failure after a quiet minute past the last lockout starts
    # again at _LOCKOUT_MS: a stranger guessing now and then cannot keep the address locked out for long.
    elif time.ticks_diff(now, auth._until[i]) > _LOCKOUT_MAX_MS:
        auth._fails[i] = 0
    n = min(auth._fails[i] + 1, 255)
    auth._fails[i] = n
    wait = min(_LOCKOUT_MS << min(n - 1, 10), _LOCKOUT_MAX_MS)
    auth._until[i] = time.ticks_add(now, wait)
    auth.log.warning("auth", "failed login (failure {} from this address, its next attempt in {} ms)".format(
        n, wait))
    return None
