"""The model manager on the device: boot on the bundled default, chunked upload, validation with reasons (the
running model stays), live activation, rollback both ways, state kept on flash across a restart, and atomic
activation (cancelled or out of RAM part-way, the old model runs again)."""

import json

from devtest import StubConfig, exists, inner, quiet_log, tmpdir
from sensorbox.device.analysis import models
from sensorbox.device.store.core import Store
from sensorbox.device.analysis.models import ModelError
from sensorbox.device.analysis.pipeline import ModelSlot
from sensorbox.device.sensors.ring import SampleRing

DEFAULT = "models/default"
# The tests hold whole model files in RAM to upload and tamper with them; the device never does.
HEAPSIZE = "256wK"


class Plat:
    def __init__(self):
        self.data_dir = tmpdir()
        self.www_dir = "./www"  # the bundle root is "." (the repo, the tests' working directory)


class Dev:
    """What the model manager uses of the device."""

    def __init__(self):
        self.platform = Plat()
        self.log = quiet_log()
        self.config = StubConfig()
        self.sensors = {"accel": type("S", (), {"ring": SampleRing(3, 8, 50)})()}
        self.ml = ModelSlot()
        self.store = Store(tmpdir("store"), self.log, lambda: 0)  # its class table names the model's classes


class Manager:
    """The module's functions bound to one device, for brevity below."""

    def __init__(self):
        self.dev = Dev()
        self.config = self.dev.config
        self.dir = self.dev.platform.data_dir + "/models"

    def __getattr__(self, name):
        if name == "current":
            return self.dev.ml.model
        fn = getattr(models, name)
        return lambda *a: fn(self.dev, *a)


def manager(refill=False):
    if refill:
        # The refill path (a new model parsed into the running one's arrays) needs the viper evaluator: with
        # SENSORBOX_NATMODS, device_trees.new gives emlearn_trees, whose models cannot be emptied and refilled.
        # (Each device test runs in its own process: the patch ends with the test.)
        from sensorbox.device.analysis import trees as device_trees
        from sensorbox.shared import trees

        device_trees.new = lambda t, n, v: trees.Trees(t, n, v, device_trees.vote)
    return Manager()


def read(name, mode="rb"):
    with open(DEFAULT + "/" + name, mode) as f:
        return f.read()


def upload(m, meta_bytes, csv, chunk=700):
    m.stage_meta(meta_bytes)
    off = 0
    while off < len(csv):
        m.stage_chunk(off, csv[off:off + chunk])
        off += chunk


def refused(fn, *words):
    try:
        fn()
    except ModelError as e:
        for w in words:
            assert w in e.reason, (e.reason, w)
        return e
    raise AssertionError("accepted")


async def arefused(coro, *words):
    try:
        await coro
    except ModelError as e:
        for w in words:
            assert w in e.reason, (e.reason, w)
        return e
    raise AssertionError("accepted")


async def test_boots_on_default_then_uploads_activates_and_rolls_back():
    m = manager()
    assert (await m.boot()) is m.current and m.current.origin == "default"
    first = m.current
    meta = read("meta.json")
    csv = read("model.csv")
    upload(m, meta, csv)
    assert m.info()["staged"]
    info = await m.activate()
    assert m.current is not first and m.current.origin == "uploaded"
    assert info["active"]["sha256"] == json.loads(meta)["csv_sha256"][:16]
    assert not info["staged"] and info["previous"]
    assert exists(m.dir + "/active/model.csv") and not exists(m.dir + "/staged")
    # same features in, same class out, whichever copy of the model runs
    import array

    x = array.array("h", bytes(2 * first.trees.n_features))
    assert m.current.trees.classify(x) == first.trees.classify(x)
    await m.rollback()
    assert m.current.origin == "default" and exists(m.dir + "/previous/model.csv")
    await m.rollback()
    assert m.current.origin == "uploaded"
    # a restart finds the active model on flash
    m2 = manager()
    assert (await m2.boot()).origin == "uploaded"


async def test_bad_models_are_refused_with_reasons_and_the_old_keeps_running():
    m = manager()
    await m.boot()
    running = m.current
    meta = json.loads(read("meta.json"))
    csv = read("model.csv")
    # wrong features: refused at the first request, before any data
    bad = dict(meta)
    bad["features"] = ["nope"] + meta["features"][1:]
    refused(lambda: m.stage_meta(json.dumps(bad).encode()), "feature 0 is nope")
    bad = dict(meta)
    bad["feature_version"] = 99
    refused(lambda: m.stage_meta(json.dumps(bad).encode()), "feature version 99")
    refused(lambda: m.stage_meta(b"{not json"), "not JSON")
    bad = dict(meta)  # more classes than emlearn's trees take (int8): refused at upload, not at activation
    bad["classes"] = ["c{}".format(i) for i in range(128)]
    bad.pop("class_names", None)
    bad.pop("class_descriptions", None)
    refused(lambda: m.stage_meta(json.dumps(bad).encode()), "2..127")
    refused(lambda: m.stage_chunk(0, b"x"), "PUT meta.json first")
    # too big for ml.model_max_kb
    m.config.values["ml.model_max_kb"] = 1
    refused(lambda: m.stage_meta(read("meta.json")), "bytes of RAM")
    m.config.values["ml.model_max_kb"] = 16
    # truncated upload
    upload(m, read("meta.json"), csv[:len(csv) // 2])
    await arefused(m.activate(), "upload incomplete")
    # wrong offset
    m.stage_meta(read("meta.json"))
    e = refused(lambda: m.stage_chunk(10, csv[:10]), "continue at 0")
    assert e.field == "offset"
    # same length, altered content
    tampered = csv[:-8] + b"9" + csv[-7:]
    upload(m, read("meta.json"), tampered)
    await arefused(m.activate(), "csv_sha256")
    assert m.current is running and m.current.origin == "default"
    assert "upload refused" in m.info()["last_error"] and m.dev.ml.error
    await arefused(m.activate(), "nothing staged")
    await arefused(m.rollback(), "no previous model")


async def test_a_model_that_fails_to_parse_gives_the_old_one_back_from_flash():
    # meta.json matches the file (size, hash), so the old model is released before the CSV shows it is bad;
    # the old one is then loaded again from flash and keeps classifying the same way.
    import array
    import binascii
    import hashlib

    m = manager(refill=True)
    await m.boot()
    running = m.current
    csv = read("model.csv")
    lines = csv.split(b"\n")
    for i in range(len(lines)):
        if lines[i].startswith(b"n,"):
            lines[i] = b"n,99," + lines[i].split(b",", 2)[2]  # feature 99: the model has fewer
            break
    bad = b"\n".join(lines)
    meta = json.loads(read("meta.json"))
    meta["csv_bytes"] = len(bad)
    meta["csv_sha256"] = binascii.hexlify(hashlib.sha256(bad).digest()).decode()
    upload(m, json.dumps(meta).encode(), bad)
    await arefused(m.activate(), "model.csv: line", "feature 99")
    assert m.current is not None and m.current is not running and m.current.origin == "default"
    assert m.current.serial != running.serial
    x = array.array("h", bytes(2 * running.trees.n_features))
    assert m.current.trees.classify(x) == running.trees.classify(x)
    assert "upload refused" in m.info()["last_error"] and not m.info()["staged"]
    assert not m.dev.ml.held


async def test_loading_yields_to_other_tasks_and_one_load_at_a_time():
    # The CSV is parsed a few lines per turn of the event loop: a task that counts its turns runs many times
    # during one boot, and a second load while one runs is refused.
    import asyncio

    m = manager()
    turns = [0]
    stop = [False]

    async def ticker():
        while not stop[0]:
            turns[0] += 1
            await asyncio.sleep_ms(0)

    t = asyncio.create_task(ticker())
    load = asyncio.create_task(m.boot())
    await asyncio.sleep_ms(0)
    assert m.dev.ml.held
    await arefused(m.boot(), "being loaded")
    await load
    stop[0] = True
    await t
    nodes = json.loads(read("meta.json"))["nodes"]
    assert m.current is not None and not m.dev.ml.held
    assert turns[0] >= nodes // inner(models, "_YIELD_LINES"), (turns[0], nodes)


# --- atomic activation: cancelled or failing part-way, the old model runs again ------------------------------

def _variant(trees=None, rotate=0, nodes=None):
    """The default model changed: only its first ``trees`` trees; leaf classes moved by ``rotate`` (votes of
    class c go to c + rotate: another model of the same size); ``nodes`` claimed in meta.json. Returns (meta.json
    bytes, model.csv bytes) with a matching size and hash."""
    import binascii
    import hashlib

    meta = json.loads(read("meta.json"))
    lines = read("model.csv").split(b"\n")
    roots = [int(ln[2:]) for ln in lines if ln.startswith(b"r,")]
    out = []
    k = 0
    for ln in lines:
        if ln.startswith(b"l,") and rotate:
            ln = b"l," + str((int(ln[2:]) + rotate) % len(meta["classes"])).encode()
        elif trees is not None and ln.startswith(b"r,"):
            k += 1
            if k > trees:
                continue
        elif trees is not None and ln.startswith(b"n,"):
            k += 1
            if k > len(roots) + roots[trees]:
                continue
        out.append(ln)
    csv = b"\n".join(out)
    if trees is not None:
        meta["trees"] = trees
        meta["nodes"] = roots[trees]
    if nodes is not None:
        meta["nodes"] = nodes
    meta["csv_bytes"] = len(csv)
    meta["csv_sha256"] = binascii.hexlify(hashlib.sha256(csv).digest()).decode()
    return json.dumps(meta).encode(), csv


def _votes(model, xs):
    out = []
    for x in xs:
        model.trees.classify(x)
        out.append(list(model.trees.votes()))
    return out


def _inputs(n_features):
    from forestgen import Rng, inputs

    return inputs(Rng(7), 12, n_features)


class Watch:
    """A task that looks at device.ml.model on every turn of the event loop and notes if it was ever None."""

    def __init__(self, dev):
        import asyncio

        self.dev = dev
        self.none = 0
        self.stop = False
        self.task = asyncio.create_task(self.run())

    async def run(self):
        import asyncio

        while not self.stop:
            if self.dev.ml.model is None:
                self.none += 1
            await asyncio.sleep_ms(0)

    async def end(self):
        self.stop = True
        await self.task


async def test_a_cancelled_refill_gives_the_old_model_back():
    # The new model fits the running one's arrays, so they are refilled (one model in RAM). Cancelling the
    # activation part-way through the CSV must not leave the device without a model: a restore task, which the
    # cancellation does not stop, loads the old one from flash again. Then the same upload still activates.
    import asyncio

    from devtest import until

    m = manager(refill=True)
    await m.boot()
    xs = _inputs(m.current.trees.n_features)
    before = _votes(m.current, xs)
    meta, csv = _variant(rotate=1)
    upload(m, meta, csv)
    task = asyncio.create_task(m.activate())
    while m.dev.ml.model is not None:  # checking size and hash, with the old model running
        await asyncio.sleep_ms(0)
    for _ in range(5):  # a few turns (8 CSV lines each) into the refill
        await asyncio.sleep_ms(0)
    assert not task.done()
    task.cancel()
    try:
        await task
        raise AssertionError("the activation was not cancelled")
    except asyncio.CancelledError:
        pass
    assert m.dev.ml.held  # the restore task holds the lock ...
    await arefused(m.activate(), "being loaded")  # ... so nothing else loads meanwhile
    await until(lambda: not m.dev.ml.held)
    assert m.current is not None and m.current.origin == "default"
    assert _votes(m.current, xs) == before
    assert m.info()["staged"] and not exists(m.dir + "/active") and m.info()["last_error"] is None
    # uninterrupted, the same upload activates, and it is another model: every vote moved one class on
    await m.activate()
    assert m.current.origin == "uploaded"
    nc = len(m.current.classes)
    assert _votes(m.current, xs) == [[v[(c - 1) % nc] for c in range(nc)] for v in before]


async def test_a_model_needing_new_arrays_loads_beside_the_running_one():
    # A bigger model gets arrays of its own while the old one keeps classifying: cancelled or out of RAM
    # part-way, the old one (the same object) just runs on; it is never absent, not even for one turn.
    import asyncio
    import gc

    m = manager()
    small_meta, small_csv = _variant(trees=6)
    upload(m, small_meta, small_csv)
    await m.boot()  # the default (nothing active yet) ...
    await m.activate()  # ... replaced by the 6-tree model (refilling the default's arrays)
    m = manager()
    await m.boot()  # a restart: the 6-tree model in arrays of its size, too small for the default
    small = m.current
    assert small.n_trees == 6
    xs = _inputs(small.trees.n_features)
    before = _votes(small, xs)
    watch = Watch(m.dev)
    # 1. cancelled in the middle of parsing the CSV
    upload(m, read("meta.json"), read("model.csv"))
    task = asyncio.create_task(m.activate())
    for _ in range(40):
        await asyncio.sleep_ms(0)
    assert not task.done() and m.dev.ml.held
    task.cancel()
    try:
        await task
        raise AssertionError("the activation was not cancelled")
    except asyncio.CancelledError:
        pass
    assert m.current is small and not m.dev.ml.held
    assert _votes(m.current, xs) == before
    # 2. MemoryError: the upload claims 7,900 nodes (63 KB of arrays, allowed by ml.model_max_kb = 64) and the
    # heap has no block that big (ballast fills it, then every other 16 KB block is given back); the
    # allocation fails for real
    m.config.values["ml.model_max_kb"] = 64
    meta, csv = _variant(nodes=7900)
    upload(m, meta, csv)
    big = []
    ballast = []
    gc.collect()
    size = 16 * 1024
    while size >= 16:
        try:
            (big if size == 16 * 1024 else ballast).append(bytearray(size))
        except MemoryError:  # no block that big left: smaller ones
            size //= 2
    for i in range(0, min(len(big), 12), 2):
        big[i] = None
    gc.collect()
    assert gc.mem_free() >= 64 * 1024
    try:
        await arefused(m.activate(), "not enough RAM")
    finally:
        big = ballast = None
        gc.collect()
    assert m.current is small and not m.dev.ml.held
    assert _votes(m.current, xs) == before
    assert "not enough RAM" in m.info()["last_error"]
    # 3. uninterrupted: the default model replaces it
    upload(m, read("meta.json"), read("model.csv"))
    await m.activate()
    await watch.end()
    assert m.current.n_trees == 20 and m.current is not small
    assert watch.none == 0, "no model for {} turns".format(watch.none)


def test_upload_is_bounded_so_it_can_never_fill_the_flash():
    m = manager()
    meta = json.loads(read("meta.json"))
    meta["csv_bytes"] = 64 * 1024 + 1  # 4 x ml.model_max_kb (16) KB is the bound
    e = refused(lambda: m.stage_meta(json.dumps(meta).encode()), "64 KB", "ml.model_max_kb")
    assert e.field == "model.csv"
    # a meta.json that understates the size: chunks past the bound are refused, nothing more reaches flash
    m.stage_meta(read("meta.json"))
    chunk = b"0" * 2048
    for off in range(0, 64 * 1024, 2048):
        m.stage_chunk(off, chunk)
    e = refused(lambda: m.stage_chunk(64 * 1024, b"0"), "over the limit of 64 KB")
    assert e.field == "model.csv"
    import os

    assert os.stat(m.dir + "/staged/model.csv")[6] == 64 * 1024
    m.config.values["ml.model_max_kb"] = 32  # the bound follows the model RAM limit
    assert m.stage_chunk(64 * 1024, b"0")["received"] == 64 * 1024 + 1


async def test_a_model_of_another_window_sets_ml_window_one_no_window_fits_is_refused():
    # The model's window becomes ml.window when it runs (before: a model of another window was refused, and
    # ml.window could not be changed to its window while the old model ran), and its hop ml.hop (issue 17: the
    # hop it was trained with; before, ml.hop was lowered only when longer than the window).
    m = manager()
    await m.boot()
    meta, csv = _variant(rotate=1)
    d = json.loads(meta)
    d["window"] = 100
    refused(lambda: m.stage_meta(json.dumps(d).encode()), "100-frame windows", "32 or 64 or 128 or 256")
    d["window"], d["hop"] = 64, 32
    m.config.values["ml.hop"] = 128  # beyond the new window: follows the model's hop
    upload(m, json.dumps(d).encode(), csv)
    await m.activate()
    assert m.current.window == 64 and m.config.get("ml.window") == 64 and m.config.get("ml.hop") == 32
    await m.rollback()
    assert m.current.window == 128 and m.config.get("ml.window") == 128 and m.config.get("ml.hop") == 64
    m.config.values["ml.hop"] = 16  # the user's, after
    await m.rollback()  # (to the 64-frame model: its hop again)
    assert m.config.get("ml.window") == 64 and m.config.get("ml.hop") == 32


def _part(trees, rotate=0):
    """``_variant(trees, rotate)`` made a model on a part of the features: only those its trees use (in the
    extractor's order), numbered within that part, as ``sensorbox train --features`` writes one."""
    import binascii
    import hashlib

    meta, csv = _variant(trees, rotate)
    meta = json.loads(meta)
    lines = csv.split(b"\n")
    used = sorted(set(int(ln.split(b",")[1]) for ln in lines if ln.startswith(b"n,")))
    out = []
    for ln in lines:
        f = ln.split(b",")
        if f[0] == b"f":
            ln = b"f," + str(len(used)).encode()
        elif f[0] == b"n":
            f[1] = str(used.index(int(f[1]))).encode()
            ln = b",".join(f)
        out.append(ln)
    csv = b"\n".join(out)
    meta["features"] = [meta["features"][i] for i in used]
    meta["csv_bytes"] = len(csv)
    meta["csv_sha256"] = binascii.hexlify(hashlib.sha256(csv).digest()).decode()
    return json.dumps(meta).encode(), csv, used


async def test_a_tree_model_on_a_part_of_the_features_votes_on_the_whole_vector_and_is_refilled():
    # A model on a part of the features (train --features) runs on the extractor's whole vector, with
    # its nodes numbered in it as it loads: the same votes as the model it was cut from. A model of the same size
    # replacing it refills its arrays (one model in RAM), as for any tree model.
    m = manager(refill=True)
    await m.boot()
    xs = _inputs(m.current.trees.n_features)
    meta, csv = _variant(trees=3)
    upload(m, meta, csv)
    await m.activate()
    whole = _votes(m.current, xs)
    meta, csv, used = _part(3)
    assert 0 < len(used) < len(xs[0])
    upload(m, meta, csv)
    await m.activate()
    cur = m.current
    assert cur.trees.n_features == len(xs[0]) and cur.step is None and cur.info["features"] == len(used)
    assert _votes(cur, xs) == whole
    ev = cur.trees
    meta, csv, _ = _part(3, rotate=1)
    upload(m, meta, csv)
    await m.activate()
    assert m.current.trees is ev  # refilled
    nc = len(m.current.classes)
    assert _votes(m.current, xs) == [[v[(c - 1) % nc] for c in range(nc)] for v in whole]


async def test_the_model_loads_into_arrays_set_aside_at_start_on_a_heap_cut_into_small_pieces():
    # models.spare (boot.start, before any service runs) takes the arrays of the model boot will load while the
    # heap is whole. The pipeline boots the model later, and again after a restart that found no RAM: the config
    # fuzz saw 80 KB free in pieces of at most 1 KB then, and the default model (a 5 KB array) never loaded.
    import gc

    from sensorbox.device import lazy

    m = manager(refill=True)
    await m.boot()  # once on a whole heap, as the device's boot.warm does: the names of the loading code interned
    m = None
    for reserved in (False, True):
        m = manager(refill=True)
        if reserved:
            m.spare()
            spare = m.dev.spare
            assert (spare.max_trees, spare.max_nodes, spare.max_leaves) == (20, 620, 7)
        # What the test loaded that the device holds only while it runs goes first (StubConfig imports the config
        # schema, which models.py loads and unloads): freed part-way through boot, its blocks would join the
        # pieces below into one the model's arrays fit.
        lazy.unload("sensorbox.shared.config_schema")
        ballast = []
        gc.collect()
        try:
            while True:
                ballast.append(bytearray(1024))
        except MemoryError:
            pass
        ballast.sort(key=id)  # in address order (id is the address here): every other one back, ~half the heap
        for i in range(0, len(ballast), 2):  # free in pieces of at most 1 KB
            ballast[i] = None
        gc.collect()
        assert gc.mem_free() >= 64 * 1024
        try:
            bytearray(8 * 620)  # (the largest of the model's arrays: 620 nodes)
            raise AssertionError("the cut heap still has a block for the model's nodes")
        except MemoryError:
            pass
        try:
            await m.boot()
        finally:
            ballast = None
            gc.collect()
        if not reserved:
            assert m.current is None and "not enough RAM" in m.dev.ml.error, m.dev.ml.error
            continue
        assert m.current is not None and m.current.trees is spare and m.dev.spare is None, m.dev.ml.error
        assert m.current.n_trees == 20
