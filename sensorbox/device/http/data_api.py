"""Data API: the store's resources and their data as streamed .npy/CSV/JSON, the events and the audio clips. Any
credential may read; recording a clip needs admin. The labels: ``labels.py``.

    GET    /api/resources                      schemas, time coverage, bytes, budget, bytes/day, days until full
    GET    /api/resources/<name>/data          ?start=&end=&columns=&format=npy|csv|json&max_points=&since=
                                               (also the labels: /api/resources/labels/data?format=csv)
    GET    /api/events                         ?start=&end= the stored events (/api/resources/events/data, JSON)
    GET    /api/clips                          ?start=&end= the audio clips stored (store/clips.py), streamed
    POST   /api/clips                          record a clip now (admin; 409 while clip.enabled is off or one records)

Loaded for the request by ``server`` (``handle``), with the query and the reader (``store.plan``, then
``store.export``) or the listing (``store.figures``), each unloaded at once (``lazy``): they cost heap only while
a request runs. Resource names are looked up in the store's table, never used as paths: no traversal. Bad
parameters get ``400 {"error": reason, "field": name}`` (a resource the store does not have: 404).
"""

import asyncio
from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http.server import error, guard, not_allowed, not_found
from sensorbox.device.store.core import QueryError

_EX = const("sensorbox.device.store.export")
_PLAN = const("sensorbox.device.store.plan")
_FIG = const("sensorbox.device.store.figures")


async def handle(device, app, req):
    parts = req.path.split("/")  # "", "api", "resources"|"clips"|"events", ...
    meth = req.method
    n = len(parts)
    if parts[2] in ("clips", "events"):
        if n != 3:
            return not_found(req)
        allowed = ("GET", "POST") if parts[2] == "clips" else ("GET",)
    elif parts[2] == "resources":
        if n == 3:
            allowed = ("GET",)
        elif n == 5 and parts[3] and parts[4] == "data":
            allowed = ("GET",)
        else:
            return not_found(req)
    else:
        return not_found(req)
    if meth not in allowed:
        return not_allowed(req)
    refused = await guard(req)
    if refused is not None:
        return refused
    if parts[2] == "clips":
        return _clips(device, req)
    if parts[2] == "events":  # (here, not through device_api: ~3 KB less at an events request's peak)
        return await data(device, req, "events")
    if n == 3:  # (each one's figures taken as it is sent; "store" at the start)
        now = device.platform.epoch_ms()
        res = lazy.call(_FIG, "resources", device.store, now)  # (a generator: figures' code held while it runs)
        return {"device": device.device_id, "time_ms": now, "resources": res, "store": device.store.status()}
    return await data(device, req, parts[3])


def _clips(device, req):
    """GET /api/clips (the clips stored, a generator: read from flash as it is sent), POST /api/clips (one now)."""
    st = device.store
    c = st.clip
    if req.method == "POST":
        if c is None:
            return error(409, "clips are off: set clip.enabled first", "clip.enabled")
        if not c.trigger(1, 0):
            return error(409, "a clip is being recorded; try again when it ends", "clip")
        return {"recording": True, "length_ms": c.n * 1000 // c.rate, "pre_ms": c._pre_n * 1000 // c.rate,
                "rate_hz": c.rate}, 202
    now = device.platform.epoch_ms()
    ab = [0, 1 << 53]
    for k in req.args:
        v = req.args[k]
        if k not in ("start", "end"):
            return error(400, "unknown parameter", k)
        neg = v[:1] == "-"  # (v[:1], not v[0]: indexing a str interns the character, each digit a client sent)
        if not (v[1:] if neg else v).isdigit():
            return error(400, "{} must be an integer (epoch ms, or negative: ms before now)".format(k), k)
        v = ab[k == "end"] = int(v) + (now if neg else 0)
        if not 0 <= v <= 1 << 53:  # (as the export's: before 1970, or past 2**53)
            return error(400, "{} is out of range 0..{}".format(k, 1 << 53), k)
    a, b = ab
    rows = lazy.call(_FIG, "clips", st, a, b)  # a generator: read from flash as it is sent
    return {"enabled": c is not None, "recording": c is not None and c.a >= 0, "clips": rows}


async def data(device, req, name):
    """GET /api/resources/<name>/data (also GET /api/events, for the events resource): the query made a plan
    (``store.plan``), then the export (``store.export``), one module loaded after the other."""
    try:
        p = lazy.call(_PLAN, "plan", device.store, name, req.args, device.platform.epoch_ms())
    except QueryError as e:  # (no such resource: 404)
        return error(404 if e.field == "name" else 400, e.reason, e.field)
    ex = lazy.load(_EX)
    lazy.unload(_EX)  # unloaded at once; this handler keeps what it uses until it returns
    if p.numeric:  # count the rows (the .npy header needs them), a segment at a time
        g = ex.prepare(device.store, p)
        try:
            for _ in g:
                await asyncio.sleep_ms(0)
        finally:  # cancelled (the client went away): close its files now, not at the next collection
            g.close()
    return ex.stream(device.store, p), 200, ex.headers(p)
