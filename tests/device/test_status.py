"""The ``/api/status`` document (device/status.py) on the app's parts as built at boot: streamed as the server sends
it, a piece at a time, each encoded and written (server.Response.write)."""

import gc
import json
import os

from devtest import cut_heap, largest_free, tmpdir

HEAPSIZE = "160wK"  # (the app's parts, as test_cold_modules builds them)


class _Service:
    # what the document reads of a supervised service (supervisor.Service): a device with every integration on runs
    # ~14, and a service that failed keeps its last error
    def __init__(self, i):
        self.name = "service{}".format(i)
        self.running = True
        self.restarts = i
        self.reloads = 2 * i
        self.last_error = "MemoryError: memory allocation failed, allocating {} bytes".format(3000 + i)


def test_the_document_streams_whole_on_a_heap_without_a_1_kb_block():
    """At 152wK the config fuzz once got ``/api/status`` cut short: the head sent, then the body broke off (the
    server can only close a connection whose head it has sent). Each part of the document was one JSON string
    (``json.dumps`` of the part, joined to its name, then encoded: three blocks of its size; the services' part is
    ~1.7 KB with 14 services here), which a heap cut up by the services and requests may lack: on a heap with no
    free piece of 800 bytes that was a MemoryError half-way (before); now each part's value goes out in pieces of
    ~256 bytes, as JSON responses do, and the document is whole."""
    from sensorbox.device import app
    from sensorbox.device.platform import unix

    plat = unix.Platform()
    plat.data_dir = tmpdir("dev")
    dev = app.Device(plat, echo_log=False)  # the parts, as at boot
    for i in range(14):
        dev.supervisor.services.append(_Service(i))
    whole = json.loads("".join(dev.health.status(True)))
    assert len(json.dumps(whole["tasks"])) > 1500 and whole["tasks"]["service13"]["restarts"] == 13
    path = tmpdir() + "/status.json"
    f = open(path, "wb")
    parts = dev.health.status(True)  # (its module loaded and the generator made before the heap is cut)
    gc.collect()
    held = cut_heap(700)
    try:
        assert largest_free() < 800
        for x in parts:  # as server.Response.write sends a generator's pieces
            f.write(x.encode())
    finally:
        held.clear()
        f.close()
    with open(path) as f:
        doc = json.load(f)  # (before: MemoryError in the services' part)
    os.remove(path)
    assert doc["tasks"] == whole["tasks"] and doc["device"] == whole["device"] and doc["store"] == whole["store"]
    assert sorted(doc) == sorted(whole)
