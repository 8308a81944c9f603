"""Answering a request refused while it was read (``server._TimedReader``): loaded only when that happens.

``answer(why, reader, writer, log)``: ``why`` is 431 (a request line or header field over
``Request.max_readline``), 432 (more than ``server._HEADERS`` header fields), 433 (request line and header fields
over ``server._HEAD`` bytes) -- all three answered ``431 Request Header Fields Too Large`` -- or 408 (the client
sent nothing for ``http.read_timeout_s``: ``408 Request Timeout``). The caller closes the connection.
"""

import asyncio

from sensorbox.device.http.server import Request, error


async def answer(why, reader, writer, log):
    if why == 408:
        msg = "the request did not arrive in time (http.read_timeout_s)"
    elif why == 432:
        msg = "more than 32 header fields"
    elif why == 433:
        msg = "request line and header fields longer than 4096 bytes"
    else:
        msg = "request line or header field longer than {} bytes".format(Request.max_readline)
    log.info("http", "refused a request: " + msg)
    res = error(408 if why == 408 else 431, msg)
    res.reason = "Request Timeout" if why == 408 else "Request Header Fields Too Large"
    await res.write(writer)
    if why != 408:
        # What the client is still sending, read and dropped for a moment (<= 16 KB, 100 ms per read): closing
        # a socket with unread input resets the connection, and the client could lose the answer.
        for _ in range(32):
            try:
                if not await asyncio.wait_for_ms(reader._s.read(512), 100):
                    return
            except Exception:
                return
