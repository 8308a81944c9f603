"""The Analysis page's Python, run by MicroPython WebAssembly in a Web Worker (web/analysis-worker.js): it holds
the loaded frames and models and calls ``sensorbox.shared.analysis`` for the page.

``call(cmd, args_json)`` is the one entry: arrays come in as files under /in (written by the worker from the
page's typed arrays) and go out as files under /out; the answer is JSON ``{"result": ..., "files": [...]}``.
Progress goes to the page through the JS module ``sbjs`` (``progress(n)``), a cell's plots through ``sbjs.plot``.

Memory: this runtime collects garbage only between calls from JavaScript (never inside one: a long call grows
the heap by all it allocates), and its collector scans every word of live data for pointers, so a live array
of samples (whose int16 pairs often look like heap addresses) makes each collection slow. Hence long commands
run as jobs, a chunk of windows per call (``call``), and the loaded frames and times stay in files (/data),
read for the part a command needs.
"""

import array
import gc
import json
import sys

from sensorbox.shared import analysis, features

S = {"frames": 0, "runs": [], "rate": 50, "models": {}}
_OUT = []


def _read(name, typecode, d="/in/"):
    import os

    n = os.stat(d + name)[6]
    size = {"h": 2, "H": 2, "i": 4, "b": 1, "f": 4, "d": 8}[typecode]
    a = array.array(typecode, bytes(n // size * size))
    with open(d + name, "rb") as f:
        f.readinto(a)
    return a


def _times():
    return _read("times.bin", "i", "/data/")


def _frames(f, lo, hi):
    # frames lo .. hi - 1 (x, y, z interleaved) from the open /data/frames.bin
    a = array.array("h", bytes(6 * (hi - lo)))
    f.seek(6 * lo)
    f.readinto(a)
    return a


def _out(name, arr):
    with open("/out/" + name, "wb") as f:
        f.write(arr)
    _OUT.append(name)


def _progress(n):
    try:
        import sbjs

        sbjs.progress(n)
    except ImportError:
        pass


def version():
    import sensorbox

    return "MicroPython {} ({}), sensorbox {}".format(".".join(str(v) for v in sys.implementation.version[:3]),
                                                      sys.platform, sensorbox.__version__)


def names():
    return json.dumps(features.names(3))


def heap(a=None):
    """The heap's size (bytes in use and free, with what it may still add): it grows only when a call allocates
    more than its free space, which the jobs' steps avoid (tests/host/test_browser_analysis.py)."""
    return {"bytes": gc.mem_free() + gc.mem_alloc()}


def load(a):
    import os

    try:
        os.mkdir("/data")
    except OSError:
        pass
    for name in ("frames.bin", "times.bin"):
        try:
            os.remove("/data/" + name)
        except OSError:
            pass
        os.rename("/in/" + name, "/data/" + name)
    t = _times()
    S["frames"] = len(t)
    S["rate"] = a["rate"]
    S["runs"] = analysis.runs_of(t, a["rate"])
    gc.collect()
    return {"frames": len(t), "runs": len(S["runs"])}


def model(a):
    slot = a["slot"]
    S["models"].pop(slot, None)
    gc.collect()
    with open("/in/model.csv") as f:
        t = analysis.load_model(a["meta"], f)
    S["models"][slot] = t
    return {"classes": a["meta"]["classes"], "trees": t.n_trees, "features": t.n_features}


def ends(a):
    if a["mode"] == "device":
        e = analysis.device_ends(_times(), S["runs"], _read("stored_t.bin", "i"), a["window"], S["rate"])
    else:
        e = analysis.grid_ends(S["runs"], a["window"], a["hop"])
    _out("ends.bin", e)
    return {"n": len(e)}


CHUNK = 128  # windows per call of a long command (see ``call``): ~40 MB of garbage, below the heap's 48 MB


def extract(a):
    """Features of the windows in ends.bin, then each listed model's votes for them (a job: ``call``)."""
    e = _read("ends.bin", "i")
    w = a["window"]
    nf = len(features.names(3))
    n = len(e)
    feats = array.array("h", bytes(2 * nf * CHUNK))
    with open("/data/frames.bin", "rb") as f, open("/out/feats.bin", "wb") as out:
        for i in range(0, n, CHUNK):
            k = i
            while k < min(n, i + CHUNK):  # windows whose frames lie close together: one read
                lo = e[k] - w + 1
                m = k + 1
                while m < min(n, i + CHUNK) and e[m] - lo < 2 * CHUNK * w:
                    m += 1
                ends = array.array("i", bytes(4 * (m - k)))
                for j in range(k, m):
                    ends[j - k] = e[j] - lo
                analysis.extract(_frames(f, lo, e[m - 1] + 1), ends, w, 3, feats, 0, m - k,
                                 lambda c, k=k: _progress(k + c), 16)
                out.write(memoryview(feats)[0:nf * (m - k)])
                k = m
            yield
    _OUT.append("feats.bin")
    for slot in a.get("slots", ()):
        yield from _votes(slot, "/out/feats.bin", n)
        _out("votes-" + slot + ".bin", _JOB[1])
    yield {"n": n}


def _votes(slot, path, n):
    # the model's votes for the n feature vectors in ``path``, analysis.LANES windows per step; the array ends up
    # in _JOB[1]
    t = S["models"][slot]
    nc = t.n_classes
    nf = t.n_features
    out = array.array("H", bytes(2 * nc * n))
    part = array.array("h", bytes(2 * nf * min(n, analysis.LANES)))
    votes = array.array("H", bytes(2 * nc * min(n, analysis.LANES)))
    with open(path, "rb") as f:
        for i in range(0, n, analysis.LANES):
            m = min(n, i + analysis.LANES) - i
            f.readinto(memoryview(part)[0:nf * m])
            analysis.votes(t, part, nf, 0, m, votes)
            out[i * nc:(i + m) * nc] = votes[0:m * nc]
            yield
    _JOB[1] = out


def votes(a):
    """Votes of a model for the features in feats.bin (a job)."""
    import os

    n = os.stat("/in/feats.bin")[6] // (2 * len(features.names(3)))
    yield from _votes(a["slot"], "/in/feats.bin", n)
    _out("votes-" + a["slot"] + ".bin", _JOB[1])
    yield {"n": n}


def replay(a):
    v = _read("votes.bin", "H")
    e = _read("ends.bin", "i")
    stored = (_read("stored_cls.bin", "b"), _read("stored_conf.bin", "H")) if a.get("stored") else None
    cls, conf, restarts = analysis.replay(v, len(e), a["classes"], a["trees"], a["smooth"], a["threshold"], e,
                                          a["hop"], stored)
    _out("cls.bin", cls)
    _out("conf.bin", conf)
    out = {"restarts": restarts}
    if stored is not None:
        out["parity"] = analysis.parity(cls, conf, stored[0], stored[1], e, a.get("from", 0))
    return out


def spectrogram(a):
    e = _read("ends.bin", "i")
    half = a["window"] // 2
    cols = min(a["columns"], len(e))
    out = array.array("f", bytes(4 * half * cols))
    with open("/data/frames.bin", "rb") as f:
        frames = _frames(f, 0, S["frames"])
    picked = analysis.spectrogram(frames, e, a["window"], 3, a["signal"], cols, out)
    _out("spec.bin", out)
    return {"picked": picked}


def proposals(a):
    e = _read("ends.bin", "i")
    spans = analysis.window_spans(e, a["window"], a["hop"], _times(), 1000 // S["rate"])
    return {"runs": analysis.label_runs(_read("cls.bin", "b"), spans, a["min_ms"])}


def evaluate(a):
    """Per model: the confusion matrix of the labelled windows and per-class precision and recall."""
    e = _read("ends.bin", "i")
    labels = [tuple(x) for x in a["labels"]]
    names = []
    for x in labels:
        if x[2] not in names:
            names.append(x[2])
    truth = analysis.window_labels(e, a["window"], _times(), labels)
    for i in range(len(truth)):  # label index -> name index
        if truth[i] >= 0:
            truth[i] = names.index(labels[truth[i]][2])
    out = {"names": names, "labelled": sum(1 for x in truth if x >= 0), "models": {}}
    for slot, m in a["models"].items():
        cls = _read("cls-" + slot + ".bin", "b")
        mat = analysis.confusion(truth, cls, len(names), len(m["classes"]))
        lc = analysis.class_of_labels(names, m["classes"], m.get("names"))
        out["models"][slot] = {"matrix": mat, "label_class": lc,
                               "scores": analysis.scores(mat, lc, len(m["classes"]))}
    _out("truth.bin", truth)
    return out


def histogram(a):
    feats = _read("feats.bin", "h")
    groups = _read("groups.bin", "b")
    nf = len(features.names(3))
    lo, hi, counts = analysis.histogram(feats, nf, a["column"], groups, a["groups"], a["bins"])
    return {"lo": lo, "hi": hi, "counts": counts}


def table(a):
    cols = analysis.table_columns(features.names(3), a["device"], a["models"])
    t = _read("t.bin", "i")
    ints = _read("ints.bin", "h")
    n = len(t)
    if a["format"] == "npy":
        _out("table", analysis.table_npy(cols, a["base"], t, ints, n))
    else:
        names = {c: (v[0], v[1]) for c, v in a.get("names", {}).items()}
        _out("table", analysis.table_csv(cols, a["base"], t, ints, n, names).encode())
    return {"columns": [c[0] for c in cols], "rows": n}


# ---- the Python cell ----

_CELL = {}


def plot(*series, title=None, labels=None, kind="line"):
    """Draw a chart under the cell: ``plot(y)``, ``plot(x, y1, y2, ...)`` (sequences of numbers), with an
    optional ``title``, series ``labels`` and ``kind`` ("line" or "points")."""
    import sbjs

    if len(series) == 1:
        series = (list(range(len(series[0]))), series[0])
    sbjs.plot(json.dumps({"series": [list(s) for s in series], "title": title, "labels": labels, "kind": kind}))


def bind(a):
    """The selection as names for the cell: t (epoch ms, floats), x, y, z, features (name -> per-window
    values), ft (the windows' end times), pred (their classes, -1 unknown), classes, labels."""
    g = _CELL
    g.clear()
    base = a["base"]
    t = _read("times.bin", "i")
    g["t"] = array.array("d", [base + v for v in t])
    xyz = _read("xyz.bin", "h")
    n = len(t)
    for c, name in enumerate(("x", "y", "z")):
        col = array.array("h", bytes(2 * n))
        for i in range(n):
            col[i] = xyz[3 * i + c]
        g[name] = col
    names = features.names(3)
    nf = len(names)
    feats = _read("feats.bin", "h")
    nw = len(feats) // nf
    g["features"] = {}
    for j in range(nf):
        col = array.array("h", bytes(2 * nw))
        for i in range(nw):
            col[i] = feats[i * nf + j]
        g["features"][names[j]] = col
    ft = _read("ft.bin", "i")
    g["ft"] = array.array("d", [base + v for v in ft])
    g["pred"] = _read("pred.bin", "b")
    g["classes"] = a["classes"]
    g["labels"] = [(base + x[0], base + x[1], x[2]) for x in a["labels"]]
    g["plot"] = plot
    g["array"] = array
    gc.collect()
    return {"frames": n, "windows": nw}


def run(a):
    """Run the cell's code with the bound names; its output goes to stdout, an error's traceback too."""
    import io

    try:
        exec(a["code"], _CELL)
        return {"ok": True}
    except Exception as e:  # the user's error: the traceback is the answer
        buf = io.StringIO()
        sys.print_exception(e, buf)
        return {"ok": False, "traceback": buf.getvalue()}


_CMDS = {"load": load, "model": model, "ends": ends, "extract": extract, "votes": votes, "replay": replay,
         "spectrogram": spectrogram, "proposals": proposals, "evaluate": evaluate, "histogram": histogram,
         "table": table, "bind": bind, "run": run, "heap": heap}


_JOB = [None, None]  # the command in progress (a generator), and what its steps hand on


def call(cmd, args):
    """Run ``cmd``; a long one (a generator: a job) runs a step, answers ``{"more": true}`` and goes on with the
    next call of "more". The worker calls again at once: between calls control is back in JavaScript, which is
    where this runtime collects garbage (never inside a call, which would grow the heap without end)."""
    del _OUT[:]
    if cmd == "more":
        result = next(_JOB[0])
    else:
        _JOB[0] = None
        result = _CMDS[cmd](json.loads(args))
        if hasattr(result, "send"):
            _JOB[0] = result
            result = next(result)
    if result is None:
        return '{"more": true}'
    _JOB[0] = _JOB[1] = None
    return json.dumps({"result": result, "files": list(_OUT)})
