"""A request's JSON body, parsed and checked (``server.read_json``, which loads this module for the call; the
members of a whole-config PUT, which ``body.py`` reads in pieces, one by one).

A body whose ``Content-Type`` is not ``application/json`` is refused with 415 (``curl -d`` sends a form's type:
add ``-H 'Content-Type: application/json'``); one without a ``Content-Type`` is read as JSON.

A body is refused (``BadRequest``, answered 400 with the reason) when it is not JSON, or when it holds what would
break a handler or a response: a lone UTF-16 surrogate, escaped (``\\ud800``) or encoded (bytes ED A0..BF:
MicroPython decodes them into strings that no longer encode as UTF-8, so every answer echoing one was broken);
nesting deeper than ``DEPTH`` (an 8000-deep body ran the parser out of memory: 503 every time); a number that is
not finite (``1e999``: OverflowError, 500) or past ``_BIG``. Escaped surrogate pairs (``\\ud83d\\ude00``, what
Python's json sends for non-ASCII text) become the character they stand for (MicroPython's json would keep two
surrogates), as UTF-8 bytes made without ``chr()``, which interns what it makes (a name per character, for good).

Apart from ``body.py`` (the streamed config PUT, its CA certificates to files): a label or a login loaded all of
it, ~7 KB from the file system at the request's peak.
"""

import json

from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http.server import BadRequest, surrogate

_SCAN = const("sensorbox.device.http.body")
DEPTH = const(32)  # nesting levels a JSON body may have
_BIG = 9007199254740991  # 2**53 - 1: integers past it are refused (JavaScript's limit; struct and arrays overflow)


def read_json(req, skip=None):
    """The request body as JSON; raises BadRequest with a reason when it is not (415 when its Content-Type is
    another type's: a body without one is read as JSON). An object read as its members (``feed``) leaves out
    those for which ``skip(key, value)`` is true (PUT /api/config: a value as it is now; a whole-config PUT's
    dict then holds what changes, not a table of ~80 keys: 1.5 KB on the unix port)."""
    ct = getattr(req, "content_type", None)  # (a handler's own stand-in for a request may have none)
    if ct is not None and ct.split(";")[0].strip().lower() != "application/json":
        raise BadRequest("expected Content-Type: application/json, not {}".format(ct[:64]),
                         "Content-Type", 415)
    body = req.body
    if isinstance(body, list):  # a JSON object's members, read in pieces (``feed``): each parsed as an object
        v = {}
        for b in body:
            if isinstance(b, tuple):  # (key, a CA value streamed to its file: ``_Long.close``)
                if isinstance(b[1], ValueError):
                    raise BadRequest(b[1].args[0], b[0])
                v[b[0]] = b[1]
            elif b.strip():  # (``{}``; and MicroPython's parser passes over a missing or extra comma, so here too)
                b = parse(b"{" + b + b"}")
                for k in b:
                    if skip is None or not skip(k, b[k]):
                        v[k] = b[k]
        return v
    if not body:
        raise BadRequest("empty body; expected JSON")
    return parse(body)


def parse(body):
    """``body`` (bytes) as JSON, checked (module docstring); BadRequest when it is not."""
    if surrogate(body):
        raise BadRequest("request body is not valid UTF-8 (an encoded UTF-16 surrogate)")
    if b"\\ud" in body or b"\\uD" in body:
        body = _pairs(body)
    if body.count(b"[") + body.count(b"{") > DEPTH:  # its deepest nesting outside strings, counted until it
        m = lazy.load(_SCAN)  # passes DEPTH by the scan of bodies read in pieces (body.py)
        lazy.unload(_SCAN)
        st = m.start(False)
        m.feed(body, st)
        if st[1] > DEPTH:
            raise BadRequest("request body is nested deeper than {} levels".format(DEPTH))
    try:  # parsed from the bytes as they are: a decoded copy needed a second block of the body's size (issue 19:
        v = json.loads(body)  # a 6 KB whole-config PUT found none). Strings that are not UTF-8: UnicodeError.
    except (ValueError, UnicodeError) as e:
        raise BadRequest("request body is not valid JSON ({})".format(e))
    if not _finite(v):
        raise BadRequest("request body holds a number that is not finite or beyond +-2**53")
    return v


def _hex4(b, i):
    try:
        return int(b[i:i + 4], 16) if len(b) >= i + 4 else -1
    except ValueError:
        return -1


def _pairs(b):
    # \\uD8xx\\uDCxx escapes -> the UTF-8 of the character; a lone surrogate escape -> BadRequest.
    b = bytes(b)  # (the body may be a bytearray: int() and join take bytes)
    out = []
    last = 0
    i = b.find(b"\\u")
    while i >= 0:
        j = i
        while j > 0 and b[j - 1] == 92:
            j -= 1
        h = _hex4(b, i + 2) if (i - j) % 2 == 0 else -1  # (an odd run of backslashes before it: not an escape)
        if 0xD800 <= h <= 0xDFFF:
            lo = _hex4(b, i + 8) if b[i + 6:i + 8] == b"\\u" else -1
            if h > 0xDBFF or not 0xDC00 <= lo <= 0xDFFF:
                raise BadRequest("request body holds a lone surrogate escape (\\u{:04x}), which is not text".format(h))
            out.append(b[last:i])
            # its UTF-8 bytes by arithmetic: chr() would intern the character as a name for good, and a client
            # sending many different ones grew the name pool without bound (issue 19)
            c = 0x10000 + ((h - 0xD800) << 10) + lo - 0xDC00
            out.append(bytes((0xF0 | c >> 18, 0x80 | (c >> 12) & 63, 0x80 | (c >> 6) & 63, 0x80 | c & 63)))
            last = i + 12
            i = b.find(b"\\u", last)
        else:
            i = b.find(b"\\u", i + 2)
    if not out:
        return b
    out.append(b[last:])
    return b"".join(out)


def _finite(v):
    # Numbers that are finite and within +-_BIG, in a structure already known to be at most DEPTH deep.
    if isinstance(v, float):
        return v - v == 0 and -_BIG <= v <= _BIG
    if isinstance(v, int):
        return -_BIG <= v <= _BIG
    if isinstance(v, dict):
        for k in v:
            if not _finite(v[k]):
                return False
    elif isinstance(v, list):
        for x in v:
            if not _finite(x):
                return False
    return True
