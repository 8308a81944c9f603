"""The Analysis page's Python, run by MicroPython WebAssembly in a Web Worker (web/analysis-worker.js): it holds
the loaded frames and models and calls ``sensorbox.shared.analysis`` for the page.

``call(cmd, args_json)`` is the one entry: arrays come in as files under /in (written by the worker from the
page's typed arrays) and go out as files under /out; the answer is JSON ``{"result": ..., "files": [...]}``.
Progress goes to the page through the JS module ``sbjs`` (``progress(n)``), a cell's plots through ``sbjs.plot``.
"""

import array
import gc
import json
import sys

from sensorbox.shared import analysis, features

S = {"frames": None, "times": None, "runs": [], "rate": 50, "models": {}}
_OUT = []


def _read(name, typecode):
    import os

    n = os.stat("/in/" + name)[6]
    size = {"h": 2, "H": 2, "i": 4, "b": 1, "f": 4, "d": 8}[typecode]
    a = array.array(typecode, bytes(n // size * size))
    with open("/in/" + name, "rb") as f:
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


def load(a):
    S["frames"] = _read("frames.bin", "h")
    S["times"] = _read("times.bin", "i")
    S["rate"] = a["rate"]
    S["runs"] = analysis.runs_of(S["times"], a["rate"])
    gc.collect()
    return {"frames": len(S["times"]), "runs": len(S["runs"])}


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
        e = analysis.device_ends(S["times"], S["runs"], _read("stored_t.bin", "i"), a["window"], S["rate"])
    else:
        e = analysis.grid_ends(S["runs"], a["window"], a["hop"])
    _out("ends.bin", e)
    return {"n": len(e)}


def extract(a):
    """Features of the windows in ends.bin, then each listed model's votes for them."""
    e = _read("ends.bin", "i")
    nf = len(features.names(3))
    n = len(e)
    feats = array.array("h", bytes(2 * nf * n))
    analysis.extract(S["frames"], e, a["window"], 3, feats, progress=_progress, every=16)
    _out("feats.bin", feats)
    for slot in a.get("slots", ()):
        _out("votes-" + slot + ".bin", _votes(slot, feats, n))
    return {"n": n}


def _votes(slot, feats, n):
    t = S["models"][slot]
    out = array.array("H", bytes(2 * t.n_classes * n))
    return analysis.votes(t, feats, t.n_features, 0, n, out)


def votes(a):
    feats = _read("feats.bin", "h")
    n = len(feats) // len(features.names(3))
    _out("votes-" + a["slot"] + ".bin", _votes(a["slot"], feats, n))
    return {"n": n}


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
    picked = analysis.spectrogram(S["frames"], e, a["window"], 3, a["signal"], cols, out)
    _out("spec.bin", out)
    return {"picked": picked}


def proposals(a):
    e = _read("ends.bin", "i")
    spans = analysis.window_spans(e, a["window"], a["hop"], S["times"], 1000 // S["rate"])
    return {"runs": analysis.label_runs(_read("cls.bin", "b"), spans, a["min_ms"])}


def evaluate(a):
    """Per model: the confusion matrix of the labelled windows and per-class precision and recall."""
    e = _read("ends.bin", "i")
    labels = [tuple(x) for x in a["labels"]]
    names = []
    for x in labels:
        if x[2] not in names:
            names.append(x[2])
    truth = analysis.window_labels(e, a["window"], S["times"], labels)
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
         "table": table, "bind": bind, "run": run}


def call(cmd, args):
    del _OUT[:]
    result = _CMDS[cmd](json.loads(args))
    return json.dumps({"result": result, "files": list(_OUT)})
