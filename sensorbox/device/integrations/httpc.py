"""A small asyncio HTTP/1.1 client for the webhook sink (device side), and HMAC-SHA256 (MicroPython has no hmac).

    url = (True, "example.org", 8443, "/hook")            # (tls, host, port, path): webhook_settings.parse_url
    mac = Hmac(b"secret")
    sig = mac.hexdigest(b"1700000000", b".", body)       # HMAC-SHA256 over the concatenated parts
    status = await post(url, body, b"X-Foo: 1\\r\\n", 10000)

One request per connection (``Connection: close``): a webhook sink sends one message at a time and a fresh
connection after a failure is what a retry wants anyway. Every network await (connect, send, status line) has
the timeout; on a timeout ``asyncio.TimeoutError`` is raised and the connection is closed. Only the status code
is read back (the receiver's body does not matter to the sender). TLS: ``https`` wraps the connection with the
ssl module: with a context that verifies (``tls.context`` of a configured CA) the server's certificate and host
name are checked, without one (a device has no CA store) TLS protects the payload in transit only; the HMAC
signature is what authenticates the device to the receiver.
"""

import binascii
import hashlib

import asyncio

from sensorbox.device.supervisor import wait_for_ms  # (asyncio.wait_for_ms leaves a stray cancel behind)


class Hmac:
    """HMAC-SHA256 (RFC 2104) with the key's pads computed once."""

    def __init__(self, key):
        if isinstance(key, str):
            key = key.encode()
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        self._i = bytearray(64)
        self._o = bytearray(64)
        for i in range(64):
            k = key[i] if i < len(key) else 0
            self._i[i] = k ^ 0x36
            self._o[i] = k ^ 0x5C

    def digest(self, *parts):
        h = hashlib.sha256(self._i)
        for p in parts:
            h.update(p)
        o = hashlib.sha256(self._o)
        o.update(h.digest())
        return o.digest()

    def hexdigest(self, *parts):
        return binascii.hexlify(self.digest(*parts)).decode()


async def post(url, body, headers, timeout_ms, content_type=b"application/json", ctx=None):
    """POST ``body`` (bytes) to ``url`` ((tls, host, port, path)) with extra ``headers`` (bytes, CRLF-terminated lines);
    returns the response's status code. Raises OSError, asyncio.TimeoutError or ValueError (a malformed reply, or
    a certificate that ``ctx`` refused). ``ctx``: the ``ssl.SSLContext`` for https (default: not verifying)."""
    tls, host, port, path = url
    if tls:
        if ctx is None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_NONE
        r, w = await wait_for_ms(asyncio.open_connection(host, port, ssl=ctx), timeout_ms)
    else:
        r, w = await wait_for_ms(asyncio.open_connection(host, port), timeout_ms)
    try:
        hosth = host if port == (443 if tls else 80) else "{}:{}".format(host, port)
        w.write("POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n".format(
            path, hosth, len(body)).encode())
        w.write(b"Content-Type: " + content_type + b"\r\n")
        w.write(headers)
        w.write(b"\r\n")
        w.write(body)
        await wait_for_ms(w.drain(), timeout_ms)
        line = await wait_for_ms(r.readline(), timeout_ms)
        p = line.split(None, 2)
        if len(p) < 2 or not p[0].startswith(b"HTTP/1."):
            raise ValueError("not an HTTP response: {!r}".format(line[:40]))
        return int(p[1])
    finally:
        w.close()
        try:
            await wait_for_ms(w.wait_closed(), 1000)
        except Exception:
            pass
