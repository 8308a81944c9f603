"""Data API: the store's resources, their data as streamed .npy/CSV/JSON, and labels. Any credential may read;
adding and deleting labels needs admin.

    GET    /api/resources                      schemas, time coverage, bytes, budget, bytes/day, days until full
    GET    /api/resources/<name>/data          ?start=&end=&columns=&format=npy|csv|json&max_points=&since=
    GET    /api/labels                         all labels, streamed (also: /api/resources/labels/data?format=csv)
    POST   /api/labels                         {"start": ms, "end": ms, "label": "walking"} -> 201 with its id;
                                               409 when it overlaps a label (add "overlap": true to keep both)
    DELETE /api/labels/<id>

The reader (``store.export``), the labels (``store.meta``) and the listing (``store.figures``) are loaded per
request and unloaded at once (``lazy``): they cost heap only while a request runs. ``GET /api/labels`` is a
generator reading the labels from flash as it is sent. Resource names are looked up in the store's table, never
used as paths: no traversal.
Bad parameters get ``400 {"error": reason, "field": name}``; a label that cannot be written or deleted because
the flash is full or failing gets ``507`` (nothing changed).
"""

import asyncio

from sensorbox.device import lazy
from sensorbox.device.http.server import error, read_json
from sensorbox.device.store.core import QueryError

_EX = "sensorbox.device.store.export"
_META = "sensorbox.device.store.meta"
_FIG = "sensorbox.device.store.figures"


def add_routes(http, device):
    require = http.require

    def call(fn, *args):
        mod = _FIG if fn == "resources" else _META
        m = lazy.load(mod)
        try:
            return getattr(m, fn)(device.store, *args)
        except QueryError as e:  # 409: the label overlaps another (see store.meta.label_add)
            return error(409 if e.field == "overlap" else 400, e.reason, e.field)
        except OSError as e:  # full flash (ENOSPC) or a failing one
            return error(507, "flash full or failing ({}); nothing changed".format(e))
        finally:
            m = None
            lazy.unload(mod)

    @http.get("/api/resources")
    @require
    async def resources(req):
        now = device.platform.epoch_ms()
        res = call("resources", now)
        return {"device": device.device_id, "time_ms": now, "resources": res, "store": device.store.status()}

    @http.get("/api/resources/<name>/data")
    @require
    async def data(req, name):
        args = {}
        for k in req.args:
            args[k] = req.args.get(k)
        ex = lazy.load(_EX)
        lazy.unload(_EX)  # unloaded at once; this handler keeps what it uses until it returns
        try:
            p = ex.plan(device.store, name, args, device.platform.epoch_ms(), False)
        except QueryError as e:
            return error(400, e.reason, e.field)
        if p.numeric:  # count the rows (the .npy header needs them), a segment at a time
            g = ex.prepare(device.store, p)
            try:
                for _ in g:
                    await asyncio.sleep_ms(0)
            finally:  # cancelled (the client went away): close its files now, not at the next collection
                g.close()
        return ex.stream(device.store, p), 200, ex.headers(p)

    @http.get("/api/labels")
    @require
    async def labels(req):
        body = lazy.load(_META).labels_json(device.store)  # a generator: read from flash as it is sent
        lazy.unload(_META)
        return body, 200, {"Content-Type": "application/json"}

    @http.post("/api/labels")
    @require
    async def add_label(req):
        res = call("label_add", read_json(req))
        return res if not isinstance(res, dict) else (res, 201)

    @http.delete("/api/labels/<int:ident>")
    @require
    async def delete_label(req, ident):
        if not call("label_delete", ident):
            return error(404, "no label {}".format(ident), "id")
        return {"deleted": ident}
