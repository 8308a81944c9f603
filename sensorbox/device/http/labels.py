"""Labels API: the labelled time ranges the store keeps (``store/meta.py``, loaded for the call). Any credential may
read; adding, deleting and unpinning need admin.

    GET    /api/labels                         all labels, streamed (also: /api/resources/labels/data?format=csv)
    POST   /api/labels                         {"start": ms, "end": ms, "label": "walking"} -> 201 with its id;
                                               409 when it overlaps a label (add "overlap": true to keep both)
    DELETE /api/labels/<id>
    POST   /api/labels/<id>/unpin              release a label's raw data to retention before it is pulled

Loaded for the request by ``server`` (``handle``) and unloaded at once. Apart from ``data_api``: a label's POST
loaded the resources', exports' and clips' code too (~2.5 KB more at its peak from the file system), and a POST
that runs short of memory is not run again (``server._dispatch``). ``GET /api/labels`` is a generator reading
the labels from flash as it is sent. A label that cannot be written or deleted because the flash is full or
failing gets ``507`` (nothing changed).
"""

from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http.server import error, guard, not_allowed, not_found, read_json
from sensorbox.device.store.core import QueryError

_META = const("sensorbox.device.store.meta")


def _call(device, fn, *args):
    # store/meta.py's fn, loaded for the call; its refusals as answers
    m = lazy.load(_META)
    try:
        return getattr(m, fn)(device.store, *args)
    except QueryError as e:  # 409: the label overlaps another (see store.meta.label_add; 400: "overlap" not a bool)
        return error(409 if e.field == "overlap" and e.reason[:9] == "overlaps " else 400, e.reason, e.field)
    except OSError as e:  # full flash (ENOSPC) or a failing one
        return error(507, "flash full or failing ({}); nothing changed".format(e))
    finally:
        m = None
        lazy.unload(_META)


async def handle(device, app, req):
    parts = req.path.split("/")  # "", "api", "labels"[, id[, "unpin"]]
    n = len(parts)
    if n == 3:
        allowed = ("GET", "POST")
    elif n in (4, 5) and (parts[3].isdigit() or (parts[3][:1] == "-" and parts[3][1:].isdigit())) and (
            n == 4 or parts[4] == "unpin"):  # /api/labels/<id>, /api/labels/<id>/unpin
        allowed = ("DELETE",) if n == 4 else ("POST",)
    else:
        return not_found(req)
    if req.method not in allowed:
        return not_allowed(req)
    refused = await guard(req)
    if refused is not None:
        return refused
    if n >= 4:
        ident = int(parts[3])
        res = _call(device, "label_delete", ident, b"U" if n == 5 else b"X")  # (U: unpinned, meta.py)
        if res is True:
            return {"id": ident, "pinned": False} if n == 5 else {"deleted": ident}
        return res or error(404, "no label {}".format(ident), "id")
    if req.method == "POST":
        res = _call(device, "label_add", read_json(req))
        return res if not isinstance(res, dict) else (res, 201)
    body = lazy.call(_META, "labels_json", device.store)  # a generator: read from flash as it is sent
    return body, 200, {"Content-Type": "application/json"}
