"""The ESP32's network life: the station service (``station``), the set-up access point with its captive portal
(``portal``, ``setup_http``) and NTP (``ntp``). Only ``station`` stays loaded; the others load while used."""

from asyncio import core


def readable(sock):
    """Await this to wait until the non-blocking socket ``sock`` can be read (asyncio's own I/O wait, as its
    streams use it: no polling; a cancel, e.g. ``wait_for_ms``'s timeout, takes the wait off the queue)."""
    yield core._io_queue.queue_read(sock)
