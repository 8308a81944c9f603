"""Model API: what model runs, upload in chunks, activate without restart, roll back. Any credential may read;
uploading, activating and rolling back need admin.

    GET  /api/model                                   active model, whether a previous/staged one exists, last error
    GET  /api/model/classes                           its classes with display names and descriptions (from meta.json)
    GET  /api/model/file?which=&name=                 a model's meta.json or model.csv (active, previous, staged,
                                                      default), streamed from flash: the Analysis page runs it
    PUT  /api/model/meta.json                         start an upload; refused at once if incompatible (400 + reason)
    PUT  /api/model/model.csv?offset=N                append a chunk (N = bytes staged so far; 409 says where;
                                                      413 past 4 x ml.model_max_kb KB of CSV; text/csv or
                                                      application/octet-stream, else 415)
    POST /api/model/activate                          validate the staged model and switch to it live
    POST /api/model/rollback                          switch back to the previous model
    ...?sensor=sound                                  the same for the sound classifier's model

``sensorbox model push URL MODEL_DIR`` drives the upload. Errors: ``{"error": reason, "field": ...}``; a request
the device's state refuses now (nothing staged, no previous model, a model being loaded) gets 409, field "state".
This module and the model manager (``sensorbox.device.analysis.models``; for a GET only ``stored``) are loaded
only for the request (``handle``): this API costs the device no RAM while idle.
"""

from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http.server import error, guard, not_allowed, not_found, read_json

_MANAGER = const("sensorbox.device.analysis.models")
_FILES = const("sensorbox.device.analysis.stored")  # (what a GET reads: not the manager)
_SOUND = const("sensorbox.device.analysis.soundclass")
_STATIC = const("sensorbox.device.http.static")


# each action's method (as web/openapi.json documents them: 405 with Allow from there)
_ACTIONS = const(" classes=GET file=GET meta.json=PUT model.csv=PUT activate=POST rollback=POST ")
# model.csv's media types (415 for others; none: as sent by the UI's fetch)
_CSV = ("text/csv", "application/octet-stream")


async def handle(device, app, req):
    parts = req.path.split("/")  # "", "api", "model"[, action]
    action = parts[3] if len(parts) == 4 else None
    if len(parts) > 4 or (action is not None and (not action or _ACTIONS.find(" " + action + "=") < 0)):
        return not_found(req)
    if action is None:
        want = "GET"
    else:
        i = _ACTIONS.find(" " + action + "=") + len(action) + 2
        want = _ACTIONS[i:_ACTIONS.find(" ", i)]
    if req.method != want:
        return not_allowed(req)
    refused = await guard(req)
    if refused is not None:
        return refused
    ct = req.content_type
    if action == "model.csv" and ct is not None and ct.split(";")[0].strip().lower() not in _CSV:
        return error(415, "model.csv goes as text/csv or application/octet-stream, not {}".format(ct[:64]),
                     "Content-Type")
    return await _model_call(device, app, req, action)


async def _model_call(device, app, req, action):
    # (apart from handle: a function's bytecode is one block, which a cut-up heap lacks at ~700 bytes)
    sensor = req.args.get("sensor")
    if sensor not in (None, "sound", "accel"):  # (refused before a module is loaded for it)
        return error(400, "no model for sensor {!r}: sensor=sound (the sound classifier's) or none (the activity "
                     "model's)".format(sensor[:32]), "sensor")
    name = _FILES if req.method == "GET" else _MANAGER
    m = lazy.load(name)
    try:
        if sensor == "sound":  # the sound classifier's model
            device = lazy.load(_SOUND).slot(device)
        if action in (None, "classes"):
            return m.classes(device) if action == "classes" else m.info(device)
        if req.method == "GET" and action == "file":
            n = req.args.get("name")
            st = lazy.load(_STATIC)  # (lazy.call passes no keyword arguments)
            lazy.unload(_STATIC)
            return st.send_file(m.file_path(device, req.args.get("which"), n), max_age=0,
                                content_type="application/json" if n == "meta.json" else "text/csv")
        if req.method == "PUT" and action == "meta.json":
            read_json(req)  # (400 for what would not parse safely: nesting, numbers, surrogates)
            return m.stage_meta(device, req.body)
        if req.method == "PUT" and action == "model.csv":
            off = int(req.args.get("offset", "0"))
            if off < 0:
                raise ValueError
            return m.stage_chunk(device, off, req.body)
        if req.method == "POST" and action in ("activate", "rollback"):
            return await (m.activate(device) if action == "activate" else m.rollback(device))
        return not_found(req)
    except m.ModelError as e:
        code = (409 if e.field in ("offset", "state") else 413 if e.field == "model.csv" else
                404 if e.field == "model" else 400)
        return error(code, e.reason, e.field)
    except ValueError:
        return error(400, "offset must be an integer >= 0", "offset")
    except OSError as e:
        return error(507, "flash error while handling the model ({})".format(e))
    finally:
        m = device = None
        lazy.unload(name)
        if sensor == "sound" and app.device.soundmeter._classifier is None:  # not running: its module goes
            lazy.unload(_SOUND)
