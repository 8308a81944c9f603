"""The model manager on the device: boot on the bundled default, chunked upload, validation with reasons (the
running model stays), live activation, rollback both ways, and state kept on flash across a restart."""

import json

from devtest import StubConfig, exists, quiet_log, tmpdir
from sensorbox.device import models
from sensorbox.device.models import ModelError
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
        self.model = self.model_error = None


class Manager:
    """The module's functions bound to one device, for brevity below."""

    def __init__(self):
        self.dev = Dev()
        self.config = self.dev.config
        self.dir = self.dev.platform.data_dir + "/models"

    def __getattr__(self, name):
        if name == "current":
            return self.dev.model
        fn = getattr(models, name)
        return lambda *a: fn(self.dev, *a)


def manager():
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


def test_boots_on_default_then_uploads_activates_and_rolls_back():
    m = manager()
    assert m.boot() is m.current and m.current.origin == "default"
    first = m.current
    meta = read("meta.json")
    csv = read("model.csv")
    upload(m, meta, csv)
    assert m.info()["staged"]
    info = m.activate()
    assert m.current is not first and m.current.origin == "uploaded"
    assert info["active"]["sha256"] == json.loads(meta)["csv_sha256"][:16]
    assert not info["staged"] and info["previous"]
    assert exists(m.dir + "/active/model.csv") and not exists(m.dir + "/staged")
    # same features in, same class out, whichever copy of the model runs
    import array

    x = array.array("h", bytes(2 * first.trees.n_features))
    assert m.current.trees.classify(x) == first.trees.classify(x)
    m.rollback()
    assert m.current.origin == "default" and exists(m.dir + "/previous/model.csv")
    m.rollback()
    assert m.current.origin == "uploaded"
    # a restart finds the active model on flash
    m2 = manager()
    assert m2.boot().origin == "uploaded"


def test_bad_models_are_refused_with_reasons_and_the_old_keeps_running():
    m = manager()
    m.boot()
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
    refused(lambda: m.stage_chunk(0, b"x"), "PUT meta.json first")
    # too big for ml.model_max_kb
    m.config.values["ml.model_max_kb"] = 1
    refused(lambda: m.stage_meta(read("meta.json")), "bytes of RAM")
    m.config.values["ml.model_max_kb"] = 16
    # truncated upload
    upload(m, read("meta.json"), csv[:len(csv) // 2])
    refused(m.activate, "upload incomplete")
    # wrong offset
    m.stage_meta(read("meta.json"))
    e = refused(lambda: m.stage_chunk(10, csv[:10]), "continue at 0")
    assert e.field == "offset"
    # same length, altered content
    tampered = csv[:-8] + b"9" + csv[-7:]
    upload(m, read("meta.json"), tampered)
    refused(m.activate, "csv_sha256")
    assert m.current is running and m.current.origin == "default"
    assert "upload refused" in m.info()["last_error"] and m.dev.model_error
    refused(m.activate, "nothing staged")
    refused(m.rollback, "no previous model")
