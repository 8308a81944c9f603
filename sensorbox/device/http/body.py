"""A request body read in pieces (``server._Conn.readexactly``): a whole-config ``PUT /api/config`` is always
read so, and any other body that finds no block of its size (its nesting checked, then answered 503).

``feed`` scans each piece: the nesting outside strings (past ``DEPTH``: 400) and, for the config PUT, the JSON
object cut into its members at its top-level commas (each at most 1 KB, at most 8 KB together), which
``json_body.read_json`` parses one by one; a CA certificate's value (``mqtt.tls_ca``, ``webhook.tls_ca``) is
streamed into a file beside config.json as it arrives (``_Long``), checked on the way (docs/heap.md). Loaded
for the request; ``json_body`` also loads it to measure a deeply nested body.
"""

import os
from binascii import crc32

from micropython import const

from sensorbox.device.http.json_body import DEPTH, parse
from sensorbox.device.http.server import BadRequest

_CA = const(4000)  # characters a CA certificate value may have (the schema's bound of mqtt.tls_ca, webhook.tls_ca)
_HEAD = const(256)  # a long value's first bytes, kept in RAM: a value no longer than this is not written to a file
_MEMBER = const(1024)  # bytes a member of a streamed body may have (a CA's value aside: that goes to its file)
_HELD = const(8192)  # bytes the members of a streamed body may have together


def start(split=True):
    """The state of ``feed`` over a body read in pieces: [depth, deepest, in a string, after a backslash, the
    members so far (None: nesting only, ``split`` false), the current member's parts, not one object, the
    directory CA values are streamed into (``split`` the path of config.json; else None: held as any other
    value), the CA value being streamed (``_Long``), after the current member's colon, bytes held]."""
    where = split[:split.rfind("/") + 1] if isinstance(split, str) else None
    return [0, 0, False, False, [] if split else None, [], False, where, None, False, 0]


def end(st):
    """What ``read_json`` takes of a body ``feed`` read to its end: its members, or why it is not one object, or
    too much to hold."""
    if st[6] or st[0] or st[5]:
        return [("(body)", ValueError("expected one JSON object"))]
    if st[10] > _HELD:
        return [(None, ValueError("over 8 KB besides CA certificates"))]
    return st[4]


def feed(b, st):
    """Advance a scan over the next piece ``b`` of a body (``st``: ``start``): its nesting outside strings
    (``st[1]``: the deepest; stops once it passes ``DEPTH``) and, for ``PUT /api/config``, a JSON object cut
    into its members (``"key": value``) at its top-level commas, so that ``read_json`` needs blocks of a
    member's size, not the body's; a body that is not one object sets ``st[6]``. With ``where`` a CA value
    (a key ending ``tls_ca``; the schema's PEM rule) longer than ``_HEAD`` bytes never is a member: its bytes go
    to a file as they arrive, checked on the way (``_Long``); the members get (key, what it became). A member
    longer than ``_MEMBER`` bytes, or more than ``_HELD`` together, is dropped as it comes, the key named."""
    d, top, quoted, escaped, out, cur = st[:6]
    sink = st[8]
    i0 = 0
    s0 = 0  # what of b the CA value being streamed has not taken yet
    i = 0
    for c in b:
        if quoted:
            if escaped:
                escaped = False
            elif c == 92:
                escaped = True
            elif c == 34:
                quoted = False
                if sink is not None:
                    _ca_end(sink, b[s0:i], out, cur)
                    sink = None
                    i0 = i + 1
        elif c == 34:
            quoted = True
            if d == 0:
                st[6] = True
            elif d == 1 and st[9] and st[7] is not None and (not cur or cur[-1] is not None):
                sink = _ca_sink(cur, b[i0:i], st[7])  # a member's value: a CA's is streamed to a file
                s0 = i + 1
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
                _member(out, cur, b[i0:i], st)
                i0 = i + 1
            elif d < 0:
                st[6] = True
        elif c == 44 and d == 1 and out is not None:
            _member(out, cur, b[i0:i], st)
            i0 = i + 1
        elif c == 58 and d == 1:
            st[9] = True
        elif d == 0 and c not in (32, 9, 10, 13):
            st[6] = True
        i += 1
    if sink is not None:
        sink.put(b[s0:])
    elif d > 0 and i0 < len(b) and out is not None:
        _hold(cur, b[i0:], st)
    st[0] = d
    st[1] = top
    st[2] = quoted
    st[3] = escaped
    st[8] = sink


def _ca_sink(cur, p, where):
    # the file a CA value goes to, whose opening quote ends ``cur`` + ``p`` (its member so far: then cleared), or
    # None for any other key's string (feed's, apart: a function's bytecode is one block of the heap)
    k = b"".join(cur) + p
    k = k[:k.find(b":")].strip()
    if k in (b'"mqtt.tls_ca"', b'"webhook.tls_ca"'):  # (config_schema: the CA keys)
        cur.clear()
        return _Long(where, k[1:-1].decode())
    return None


def _ca_end(sink, p, out, cur):
    # a CA value's last piece ``p``: its file closed, the member (key, what it became) out
    sink.put(p)
    out.append((sink.key, sink.close()))
    cur.clear()


def _hold(cur, p, st):
    # a piece of the current member kept, unless the member (then its first piece, which names the key, and
    # None) or the body's members (``end``) pass their bounds
    st[10] += len(p)
    if st[10] > _HELD:
        cur.clear()
    elif not cur or (cur[-1] is not None and sum(len(x) for x in cur) + len(p) <= _MEMBER):
        cur.append(p)
    elif cur[-1] is not None:
        del cur[1:]
        cur.append(None)


def _member(out, cur, p, st):
    # the current member (its parts and the piece p) is complete
    st[9] = False
    if len(out) > 127:  # (the list's own block: at most 1 KB here, 512 bytes on an ESP32)
        st[10] = _HELD
    _hold(cur, p, st)
    if cur and cur[-1] is None:
        k = cur[0].strip()
        out.append((k[1:k.find(b'"', 1)].decode() if k[:1] == b'"' else None, ValueError("over 1 KB")))
    elif cur:
        out.append(b"".join(cur))
    cur.clear()


class _Long:
    """A CA value streamed from a request body into ``<key>.tmp`` beside config.json (``path``: its directory), checked as it
    comes: at most ``_CA`` characters, only what PEM text holds (else refused, where the first other byte is; no
    escapes but ``\\/``). A value of at most ``_HEAD`` bytes is kept in RAM instead (a path, ""), of a longer
    one its first 64 bytes and its last 32 for the armour check (``config_file``). ``put`` takes the JSON
    string's bytes as they come; ``close`` says what the value became."""

    def __init__(self, path, key):
        self.key = key
        self._tmp = path + key + ".tmp"
        self._f = None
        self._n = 0  # characters written
        self.count = 0  # bytes of the JSON string seen
        self._crc = 0
        self.head = self._tail = b""  # (head: the JSON string while it is short)
        self.bad = None
        self._esc = False  # a piece ended with a backslash

    def put(self, p):
        self.count += len(p)
        if self.bad or not p:
            return
        try:
            if self._f is None:
                if len(self.head) + len(p) <= _HEAD:
                    self.head += p
                    return
                p = self.head + p
                self.head = b""
                self._f = open(self._tmp, "wb")
            if self._esc:
                p = b"\\" + p
                self._esc = False
            if b"\\" in p:
                p = p.replace(b"\\/", b"/")
                if p[-1] == 92 and b"\\" not in p[:-1]:
                    self._esc = True
                    p = p[:-1]
                if b"\\" in p:
                    self.bad = "an escape (line breaks as spaces)"
                    return
            n = self._n + len(p)
            if n > _CA:
                self.bad = "longer than 4000 characters"
                return
            for j in range(len(p)):  # only what PEM text holds (integration_settings._ca_byte spells it alike)
                c = p[j]
                if not (48 <= c <= 57 or 65 <= (c & 0xDF) <= 90 or c == 43 or c == 47 or c == 61 or c == 32
                        or c == 45):
                    self.bad = "a character PEM text cannot hold at {}".format(self._n + j)
                    return
            self._crc = crc32(p, self._crc)
            self._n = n
            if len(self.head) < 64:
                self.head = (self.head + p[:64])[:64]
            self._tail = (self._tail + p)[-32:]
            self._f.write(p)
        except OSError as e:  # a full flash: refused, the value in force kept
            self.bad = "cannot store it on flash ({})".format(e)

    def close(self):
        """The value: a str when it was short (checked as any other), (file, crc32, characters, its ends) when it
        was streamed, a ValueError with the reason when it was refused (the file removed)."""
        f = self._f
        if f is None:
            if self.bad:
                return ValueError(self.bad)
            try:
                return parse(b'{"k":"' + self.head + b'"}')["k"]
            except BadRequest as e:
                return ValueError(e.reason)
        try:
            f.close()
        except OSError:
            self.bad = self.bad or "flash full"
        if not self.bad:  # (its bytes are PEM text's: ASCII)
            return (self._tmp, self._crc, self._n, (self.head + b" " + self._tail).decode())
        try:
            os.remove(self._tmp)
        except OSError:
            pass
        return ValueError(self.bad)
