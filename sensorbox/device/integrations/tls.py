"""TLS client contexts for the integrations, loaded only while a sink starts (``lazy``): with a CA configured
the peer's certificate chain and host name are verified, without one the connection is encrypted but not
authenticated.

The CA is a config value: the path of a PEM or DER file on the device (one given, starting with ``/``, or
the file the configuration keeps a PEM given as text in: ``config_file``), or PEM text (its line breaks may be
given as spaces, since config strings hold no control characters: a configuration saved before the files).
It is handed to mbedTLS as DER: this port's ``load_verify_locations`` does not parse PEM.
"""

import binascii
import gc
import io

import tls as mbedtls  # (MicroPython's built-in; its ``ssl`` is a Python wrapper around it: see _verify)

from sensorbox.device import lazy


def _der(value, key):
    # The DER of ``key``'s CA value, decoded a piece at a time (``_decode``): no block but the DER's own, which
    # mbedTLS takes only as one bytes object (a 4000-character PEM was read whole, cut and joined: ~4 KB thrice).
    path = value[:1] in ("/", ".")  # (a PEM a request gave: config_file keeps it in a file of its own)
    try:  # (else PEM text or bare base64 in the config, of one saved before the files: read in place)
        with open(value, "rb") if path else io.BytesIO(value.encode()) as f:
            t = f.read(256)
            if path and not t.lstrip().startswith(b"-----BEGIN"):
                return t + f.read()  # DER
            der = _decode(f.read, t, 0 if path or value.find("-----BEGIN CERTIFICATE-----") >= 0 else 1, key)
    except OSError as e:
        raise ValueError("{}: cannot read {} ({})".format(key, value, e))
    if len(der) < 64 or der[0] != 0x30:
        raise ValueError("{}: not a certificate (PEM, base64 DER or a file path)".format(key))
    return der


def _decode(read, t, state, key):
    # Text ``t`` and what ``read`` gives next, as base64: from ``state`` 0 PEM text's (its first certificate's,
    # between its armour lines), from 1 all of it; each 256-byte piece decoded as it comes (characters short of a
    # group of 4 carried on), joined once. (state: 0 before -----BEGIN CERTIFICATE-----, 1 in the base64, 2 at the
    # end line.)
    out = []
    pem = state == 0
    p = t
    while p and (state < 2 or len(t) < 25):
        p = read(256)
        t += p
        if state == 0:
            i = t.find(b"-----BEGIN CERTIFICATE-----")
            if i < 0:
                t = t[-26:]
                continue
            t = t[i + 27:]
            state = 1
        if state == 1:
            j = t.find(b"-") if pem else -1
            b = b"".join((t if j < 0 else t[:j]).split())
            k = len(b) - len(b) % 4 if j < 0 and p else len(b)
            try:
                out.append(binascii.a2b_base64(b[:k]))
            except ValueError:
                return b""
            t = b[k:] if j < 0 else t[j:]
            state += j >= 0
    if state == 0:
        return b""
    if pem and not t.startswith(b"-----END CERTIFICATE-----"):
        raise ValueError("{}: PEM without -----END CERTIFICATE-----".format(key))
    return b"".join(out)


def _verify(ctx, ca, key):
    """``ctx``, a client context (MicroPython's ``tls.SSLContext``, which ``asyncio.open_connection`` takes as
    ``ssl``: ~3 KB in one block, 3,048 bytes here; not ``ssl.SSLContext``, whose Python wrapper object is made
    before that block), verifying against ``ca`` (the DER of the config value of ``key``, ``_der``; named as that value is:
    one interned name fewer) when it is given, else not verifying. Raises ValueError naming ``key`` when mbedTLS
    refuses it."""
    if ca is None:
        ctx.verify_mode = mbedtls.CERT_NONE
        return ctx
    try:
        ctx.load_verify_locations(ca)
    except (ValueError, OSError) as e:
        raise ValueError("{}: the certificate was refused ({})".format(key, " ".join(str(e).split())))
    ctx.verify_mode = mbedtls.CERT_REQUIRED
    return ctx


def _any(device):
    # True when a sink keeps a context
    for o in (getattr(device, "mqtt", None), getattr(device, "webhook", None)):
        if o is not None and o.tls is not None:
            return True
    return False


def spare(device):
    """At a start of the MQTT or the webhook sink that needs no TLS, while neither keeps a context: a context that
    verifies nothing (the one an https receiver or ``mqtt.tls`` without a CA uses) made now and kept as
    ``lazy.tls_spare``, so that the first TLS start, however late, has its block (``context``): turned on after
    hours of config changes and requests, it found no 3,048 bytes on the cut-up heap (the config fuzz at 152wK:
    ``webhook.2.url`` set to an https URL after ~250 changes). Costs that block (3,104 bytes here: MicroPython's
    ``tls`` object) while an integration is enabled without TLS; given up (``lazy.release``) when a request or import
    runs out of memory with lazy's reserve used (the every-feature soak at 152wK: 6-8 503s a minute with it kept,
    none without it), made again at a later start. Made when the heap has the block, else not (then the first TLS
    start asks for one, as before)."""
    if lazy.tls_spare is None and not _any(device):
        try:
            lazy.tls_spare = _verify(mbedtls.SSLContext(mbedtls.PROTOCOL_TLS_CLIENT), None, "")
        except MemoryError:
            pass


def context(device, sink, ca, key):
    """The context for ``ca`` (``_verify``) that ``sink`` (the MQTT or the webhook sink) keeps as ``sink.tls`` =
    (CA, context) for as long as it exists, from its first start with TLS: the context is ~3 KB in one block,
    which a heap that services and requests have cut into small pieces may lack when TLS is turned on or a sink
    restarts (the config fuzz saw 80 KB free, the largest piece 1.5 KB). Shared with the other sink when their CAs
    are the same (the usual case: none). The first one is the spare (``spare``) when there is one: itself
    without a CA, else made in its block. Made again only when ``ca`` changes, in the old one's block: the new CA's
    DER is made first, while the old context (or the spare) still holds that block (made after it was let go, the
    DER and the pieces it is decoded from took part of it, and the new context found no 3,048 bytes at 152wK:
    tests/device/test_tls.py), then the old one is let go and collected and the new one asked for at once, before
    any call of a function of ours: MicroPython makes a frame larger than 11 words (one with a ``try``, a few
    locals) on the heap, and that frame took the front of the block, 20 bytes more than the context (test_tls's CA
    change at its heap +-1 and 2, by where its pieces fell; so did the ``ssl`` wrapper's object). A CA
    that cannot be used raises ValueError naming ``key`` and leaves the old context (and its block) kept, or the
    spare."""
    c = _kept(device, sink, ca)
    if c is not None:
        return c
    der = _der(ca, key) if ca else None
    _let_go(device, sink)
    gc.collect()
    try:
        c = mbedtls.SSLContext(mbedtls.PROTOCOL_TLS_CLIENT)
        sink.tls = (ca, _verify(c, der, key))
    except ValueError:  # mbedTLS refused the CA: its context (in the block) goes, the spare comes back there
        der = c = None
        gc.collect()
        spare(device)
        raise
    return sink.tls[1]


def _kept(device, sink, ca):
    # The context kept for ``ca`` (the sink's, the other sink's, or the spare when ``ca`` is none: it verifies
    # nothing), now the sink's; else None. (A function of its own, as _let_go: its frame, gone when context
    # collects, is where the old context and the spare were read. The collector reads a frame's slots as it finds
    # them: a stale copy in context's own frame would keep the block for that collection.)
    t = sink.tls
    if t is not None and t[0] == ca:
        return t[1]
    for o in (getattr(device, "mqtt", None), getattr(device, "webhook", None)):
        if o is not None and o is not sink and o.tls is not None and o.tls[0] == ca:
            sink.tls = o.tls
            return o.tls[1]
    if not ca and lazy.tls_spare is not None:
        sink.tls = (ca, lazy.tls_spare)
        lazy.tls_spare = None
        return sink.tls[1]
    return None


def _let_go(device, sink):
    sink.tls = None
    lazy.tls_spare = None
