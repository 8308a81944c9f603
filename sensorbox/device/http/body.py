"""Reading a request's JSON body (``server.read_json``, which loads this module for the call).

A body whose ``Content-Type`` is not ``application/json`` is refused with 415 (``curl -d`` sends a form's type:
add ``-H 'Content-Type: application/json'``); one without a ``Content-Type`` is read as JSON.

A body is refused (``BadRequest``, answered 400 with the reason) when it is not JSON, or when it holds what would
break a handler or a response: a lone UTF-16 surrogate, escaped (``\\ud800``) or encoded (bytes ED A0..BF:
MicroPython decodes them into strings that no longer encode as UTF-8, so every answer echoing one was broken);
nesting deeper than ``DEPTH`` (an 8000-deep body ran the parser out of memory: 503 every time); a number that is
not finite (``1e999``: OverflowError, 500) or past ``_BIG``. Escaped surrogate pairs (``\\ud83d\\ude00``, what
Python's json sends for non-ASCII text) become the character they stand for (MicroPython's json would keep two
surrogates), as UTF-8 bytes made without ``chr()``, which interns what it makes (a name per character, for good).
"""

import json

from micropython import const

from sensorbox.device.http.server import BadRequest, surrogate

DEPTH = const(32)  # nesting levels a JSON body may have
_BIG = 9007199254740991  # 2**53 - 1: integers past it are refused (JavaScript's limit; struct and arrays overflow)


def read_json(req):
    """The request body as JSON; raises BadRequest with a reason when it is not (415 when its Content-Type is
    another type's: a body without one is read as JSON)."""
    ct = getattr(req, "content_type", None)  # (a handler's own stand-in for a request may have none)
    if ct is not None and ct.split(";")[0].strip().lower() != "application/json":
        raise BadRequest("the body must be JSON (Content-Type: application/json), not {}".format(ct[:64]),
                         "Content-Type", 415)
    body = req.body
    if isinstance(body, list):  # a JSON object's members, read in pieces (``feed``): each parsed as an object
        v = {}
        for b in body:
            if b.strip():  # (``{}``; and MicroPython's parser passes over a missing or extra comma, so here too)
                v.update(_parse(b"{" + b + b"}"))
        return v
    if not body:
        raise BadRequest("request body is empty; expected JSON")
    return _parse(body)


def _parse(body):
    if surrogate(body):
        raise BadRequest("request body is not valid UTF-8 (an encoded UTF-16 surrogate)")
    if b"\\ud" in body or b"\\uD" in body:
        body = _pairs(body)
    if body.count(b"[") + body.count(b"{") > DEPTH and _depth(body) > DEPTH:
        raise BadRequest("request body is nested deeper than {} levels".format(DEPTH))
    try:  # parsed from the bytes as they are: a decoded copy needed a second block of the body's size (issue 19:
        v = json.loads(body)  # a 6 KB whole-config PUT found none). Strings that are not UTF-8: UnicodeError.
    except (ValueError, UnicodeError) as e:
        raise BadRequest("request body is not valid JSON ({})".format(e))
    if not _finite(v):
        raise BadRequest("request body holds a number that is not finite or beyond +-2**53")
    return v


def start(split=True):
    """The state of ``feed`` over a body read in pieces: [depth, deepest, in a string, after a backslash, the
    members so far (None: nesting only, ``split`` False), the current member's parts, not one object]."""
    return [0, 0, False, False, [] if split else None, [], False]


def feed(b, st):
    """Advance a scan over the next piece ``b`` of a body (``st``: ``start``): its nesting outside strings
    (``st[1]``: the deepest; stops once it passes ``DEPTH``) and, for a body that had no block of its size
    (``server``, ``PUT /api/config``), a JSON object cut into its members (``"key": value``) at its top-level
    commas, so that ``read_json`` needs blocks of a member's size, not the body's; a body that is not one object
    sets ``st[6]``."""
    d, top, quoted, escaped, out, cur = st[:6]
    i0 = 0
    i = 0
    for c in b:
        if quoted:
            if escaped:
                escaped = False
            elif c == 92:
                escaped = True
            elif c == 34:
                quoted = False
        elif c == 34:
            quoted = True
            if d == 0:
                st[6] = True
        elif c == 91 or c == 123:
            if d == 0 and out is not None:
                if c == 91 or out or cur:
                    st[6] = True
                i0 = i + 1  # (the member starts after the object's brace)
            d += 1
            if d > top:
                top = d
                if top > DEPTH:
                    break
        elif c == 93 or c == 125:
            d -= 1
            if d == 0 and out is not None:
                cur.append(b[i0:i])
                out.append(b"".join(cur))
                cur.clear()
                i0 = i + 1
            elif d < 0:
                st[6] = True
        elif c == 44 and d == 1 and out is not None:
            cur.append(b[i0:i])
            out.append(b"".join(cur))
            cur.clear()
            i0 = i + 1
        elif d == 0 and c not in (32, 9, 10, 13):
            st[6] = True
        i += 1
    if d > 0 and i0 < len(b) and out is not None:
        cur.append(b[i0:])
    st[0] = d
    st[1] = top
    st[2] = quoted
    st[3] = escaped


def _depth(b):
    # Deepest nesting of brackets outside strings, counted until it passes DEPTH.
    st = start(False)
    feed(b, st)
    return st[1]


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
