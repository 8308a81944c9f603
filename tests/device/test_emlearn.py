"""emlearn-micropython's native modules as sensorbox uses them: ``emlearn_trees`` (kernels_emlearn.CTrees, the pipeline),
``emlearn_fft`` (the features' FFT), ``emlearn_iir`` (the sound meter's A-weighting) and ``emlearn_neighbors``
(knn and anomaly models: shared/neighbors.py), through the calls their stubs declare (tests/support/emlearn_api.py).

Runs on the real modules when ``SENSORBOX_NATMODS`` names a folder of them (docs/analysis.md says how to build
them), else on the test doubles of tests/support/natmods (``NATMODS``). Checked either way:

- every call the stubs do not allow (wrong arity, typecode, length, order) is refused as the C code refuses it;
- trees: classes and votes through emlearn_trees agree 100 % with the viper and plain evaluators (random forests
  with int16 extremes, the shipped model on every window of the recording), the float outputs decode exactly for
  every vote count, and the pipeline's classify step allocates nothing (``heap_lock``);
- FFT: each output within 4 units of ``fft_q15`` (viper and plain, which are identical; measured: 3); on the
  recording's windows every feature but the band energies and ``domf`` identical, ``e0``..``e4`` within 12
  (64 * log2 units, 0.6 dB; measured: 8 over the whole recording, 78 % identical), ``domf`` the same bin in at
  least 98 % of the values (measured 99.8 %) and the shipped model's class the same in at least 98 % of the
  windows (measured: all 453);
- IIR: the A-weighted signal within 2 units of ``iir_q`` (full-scale tones and noise); the sound meter's levels
  within 0.02 dB of the fixed-point meter's, and its chunks allocate nothing.
- neighbours: with the examples in emlearn_neighbors, the k nearest (indices and distances, ties broken by index),
  classes, votes and anomaly scores equal the shared evaluator's on random models full of equal distances.
"""

import array
import gc
import math
import sys

import micropython

from emlearn_api import API, CLASSES, TYPECODES
from forestgen import Rng, forest_csv, inputs
from sensorbox.device.analysis import trees as device_trees
from sensorbox.shared import features, kernels, kernels_py, npy, trees, trees_csv
from sensorbox.shared.dsp_setup import A_WEIGHTING
from sensorbox.shared.soundlevel import SoundLevelMeter

NATMODS = True
HEAPSIZE = "1024wK"
EXCERPT = "data/watch_excerpt.npy"

import emlearn_fft  # noqa: E402  (the real module or the double, as the harness put on the path)
import emlearn_iir  # noqa: E402
import emlearn_neighbors  # noqa: E402
import emlearn_trees  # noqa: E402


def _which():
    f = getattr(emlearn_trees, "__file__", "")
    return "double" if "natmods" in f and "support" in f else "real"


def _raises(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return
    except Exception as e:
        raise AssertionError("{} raised {!r}, not {}".format(fn, e, exc.__name__))
    raise AssertionError("{}{} accepted".format(fn, args))


def _model(lines=None):
    lines = lines or ["f,2", "c,3", "l,0", "l,1", "l,2", "r,0", "n,0,10.0,-1,1", "n,1,-5.0,-2,-3"]
    m = emlearn_trees.new(2, 4, 4)
    trees_csv.load(lines, m)  # the Loader drives the module's own builder calls
    return m


def _fft(n=8):
    f = emlearn_fft.FFT(n)
    emlearn_fft.fill(f, n)
    return f


def _iir():
    return emlearn_iir.new(array.array("f", [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]))


def _nb(predicted=False):
    m = emlearn_neighbors.new(2, 2, 1)
    m.additem(array.array("h", [1, 2]), 0)
    m.additem(array.array("h", [3, 4]), 1)
    if predicted:
        m.predict(array.array("h", [0, 0]))
    return m


def _callable(module, name):
    """A bound callable for an API entry's name, and a valid argument list for it."""
    h = array.array("h", [1, 2])
    f3 = array.array("f", bytes(12))
    f8 = array.array("f", bytes(32))
    f4 = array.array("f", bytes(16))
    table = {
        ("emlearn_trees", "new"): (emlearn_trees.new, (2, 4, 4)),
        ("emlearn_trees", "load_model"): (emlearn_trees.load_model, (emlearn_trees.new(1, 1, 2), ["f,1", "c,2"])),
        ("emlearn_trees", "Model.predict"): (_model().predict, (h, f3)),
        ("emlearn_trees", "Model.outputs"): (_model().outputs, ()),
        ("emlearn_trees", "Model.setdata"): (emlearn_trees.new(1, 1, 1).setdata, (2, 3)),
        ("emlearn_trees", "Model.addroot"): (emlearn_trees.new(1, 1, 1).addroot, (0,)),
        ("emlearn_trees", "Model.addnode"): (emlearn_trees.new(1, 1, 1).addnode, (-1, -1, 0, 0)),
        ("emlearn_trees", "Model.addleaf"): (emlearn_trees.new(1, 1, 1).addleaf, (0,)),
        ("emlearn_fft", "FFT.__init__"): (emlearn_fft.FFT, (8,)),
        ("emlearn_fft", "FFT.run"): (_fft().run, (f8, array.array("f", bytes(32)))),
        ("emlearn_fft", "FFT.fill"): (emlearn_fft.FFT(8).fill, (f4, array.array("f", bytes(16)))),
        ("emlearn_fft", "fill"): (emlearn_fft.fill, (emlearn_fft.FFT(8), 8)),
        ("emlearn_iir", "new"): (emlearn_iir.new, (array.array("f", bytes(24)),)),
        ("emlearn_iir", "IIR.run"): (_iir().run, (f3,)),
        ("emlearn_neighbors", "new"): (emlearn_neighbors.new, (2, 2, 1)),
        ("emlearn_neighbors", "Model.predict"): (_nb().predict, (h,)),
        ("emlearn_neighbors", "Model.additem"): (emlearn_neighbors.new(9, 2, 1).additem, (h, 0)),
        ("emlearn_neighbors", "Model.getitem"): (_nb().getitem, (0, array.array("h", [0, 0]))),
        ("emlearn_neighbors", "Model.getresult"): (_nb(True).getresult, (1,)),
    }
    return table[(module, name)]


def test_calls_the_stubs_do_not_allow_are_refused():
    print("emlearn modules:", _which(), emlearn_trees, emlearn_fft, emlearn_iir)
    checked = 0
    for module, name, params, _src in API:
        fn, args = _callable(module, name)
        assert len(args) == len(params), name
        fn(*args)  # the stub's call is accepted
        _raises(TypeError, fn, *(args + (0,)))  # one argument too many
        if args:
            _raises(TypeError, fn, *args[:-1])  # one too few
        for i in range(len(params)):
            code = TYPECODES.get((module, name, params[i]))
            if code is None:
                continue
            fn, args = _callable(module, name)
            other = array.array("f" if code == "h" else "h", bytes(4 * 8))
            bad = list(args)
            bad[i] = other
            _raises(ValueError, fn, *bad)  # another typecode
            bad[i] = [0] * 8
            _raises(TypeError, fn, *bad)  # no buffer at all
        checked += 1
    assert checked == len(API)
    # exported names: the stubs' unexported classes are only made by new()
    for module, (cls, exported) in CLASSES.items():
        assert hasattr(sys.modules[module], cls) == exported, (module, cls)
    # the C code's other rules (emlearn_api.RULES)
    m = _model()
    _raises(RuntimeError, m.predict, array.array("h", [1, 2]), array.array("f", bytes(8)))  # 2 outputs, 3 classes
    e = emlearn_trees.new(1, 1, 1)
    _raises(ValueError, e.outputs)
    _raises(ValueError, e.predict, array.array("h", [1]), array.array("f", bytes(4)))
    e.addnode(-1, -1, 0, 0)
    _raises(ValueError, e.addnode, -1, -1, 0, 0)  # capacity
    e.addroot(0)
    _raises(ValueError, e.addroot, 0)
    e.addleaf(0)
    _raises(ValueError, e.addleaf, 0)
    _raises(ValueError, emlearn_trees.new(1, 2, 1).addnode, -1, -1, 128, 0)
    _raises(ValueError, emlearn_trees.new(1, 2, 1).addnode, -1, -1, -2, 0)
    f = emlearn_fft.FFT(8)
    _raises(ValueError, f.run, array.array("f", bytes(32)), array.array("f", bytes(32)))  # before fill
    _raises(ValueError, f.fill, array.array("f", bytes(12)), array.array("f", bytes(16)))  # 3 coefficients, not 4
    f = _fft(8)
    _raises(ValueError, f.run, array.array("f", bytes(36)), array.array("f", bytes(36)))  # 9 points, not 8
    _raises(ValueError, emlearn_iir.new, array.array("f", bytes(20)))  # 5 coefficients
    _raises(ValueError, emlearn_iir.new, array.array("f"))
    n = _nb()
    _raises(ValueError, n.additem, array.array("h", [1, 2]), 0)  # capacity
    _raises(ValueError, emlearn_neighbors.new(2, 2, 1).additem, array.array("h", [1, 2, 3]), 0)  # length
    _raises(ValueError, n.predict, array.array("h", [1, 2, 3]))
    _raises(ValueError, n.getresult, 2)
    _raises(ValueError, n.getitem, 2, array.array("h", [0, 0]))
    big = emlearn_neighbors.new(1, 1, 1)
    big.additem(array.array("h", [0]), 10)
    _raises(ValueError, big.predict, array.array("h", [0]))  # label 10 among the nearest


def _forests():
    rng = Rng(21)
    for case in range(6):
        n_features = 1 + rng.below(12)
        n_classes = 2 + rng.below(6)
        n_trees = 1 + rng.below(12)
        lines = forest_csv(rng, n_trees=n_trees, depth=1 + rng.below(9), n_features=n_features, n_classes=n_classes)
        n_nodes = len([line for line in lines if line.startswith("n,")])
        yield rng, lines, n_trees, n_nodes, n_features, n_classes


def test_trees_agree_with_viper_and_plain_on_random_forests():
    checked = 0
    for rng, lines, n_trees, n_nodes, n_features, n_classes in _forests():
        c = device_trees.new(n_trees, n_nodes, n_classes)  # emlearn_trees is importable: kernels_emlearn.CTrees
        assert type(c).__name__ == "CTrees"
        v = trees.Trees(n_trees, n_nodes, n_classes, device_trees.vote)
        p = trees.Trees(n_trees, n_nodes, n_classes)
        for t in (c, v, p):
            assert trees_csv.load(lines, t) == (n_features, n_classes, n_trees, n_nodes, n_classes)
        own = emlearn_trees.new(n_trees, n_nodes, n_classes)
        emlearn_trees.load_model(own, lines)  # emlearn's own loader: same model
        out = array.array("f", bytes(4 * n_classes))
        hist = array.array("H", bytes(2 * n_classes))
        _raises(trees.TreesError, c.classify, array.array("h", bytes(2 * (n_features - 1))))
        for x in inputs(rng, 300, n_features):
            want = p.classify(x)
            assert v.classify(x) == want and list(v.votes()) == list(p.votes())
            assert c.classify(x) == want and list(c.votes()) == list(p.votes())
            own.predict(x, out)  # emlearn's outputs, votes / n_trees, decoded by the pipeline's kernel
            r = device_trees.smooth(out, 1, n_trees, hist, 0, 1, n_classes)
            assert (r & 0xFF) - 1 == want and list(hist) == list(p.votes())
            checked += 1
    assert checked == 1800


def test_float_outputs_decode_to_every_vote_count():
    # Through the module: n one-node trees, tree t votes class 1 when x < t + 1, so x = k gives n - k votes for 1.
    for n in (1, 2, 3, 7, 10, 20, 31, 64, 100):
        lines = ["f,1", "c,2", "l,0", "l,1"] + ["r,{}".format(t) for t in range(n)]
        lines += ["n,0,{},-2,-1".format(t + 1) for t in range(n)]
        m = emlearn_trees.new(n, n, 2)
        trees_csv.load(lines, m)
        out = array.array("f", bytes(8))
        votes = array.array("H", bytes(4))
        x = array.array("h", [0])
        for k in range(n + 1):
            x[0] = k
            m.predict(x, out)
            device_trees.smooth(out, 1, n, votes, 0, 1, 2)
            assert list(votes) == [k, n - k], (n, k, list(out))
    # Every k / n for n up to 255 trees as float32 (k / n rounded once from double precision is the same float32
    # as the C code's float division for every n <= 1024: checked with numpy when this test was written).
    f = array.array("f", [0.0])
    one = array.array("H", [0])
    for n in range(1, 256):
        for k in range(n + 1):
            f[0] = k / n
            device_trees.smooth(f, 1, n, one, 0, 1, 1)
            assert one[0] == k, (n, k)


def _shipped():
    import json

    with open("models/default/meta.json") as fh:
        meta = json.load(fh)
    return meta


def _windows(ch=3):
    """Features of every window (hop 64) of the excerpt, as int16 arrays."""
    with open(EXCERPT, "rb") as f:
        _, shape, off = npy.parse_header(f.read(128))
        f.seek(off)
        raw = array.array("h", f.read())
    frames = shape[0]
    ex = features.Extractor(ch, 128)
    ex._fft = kernels.FFTQ(128)  # the fixed-point FFT, as the model was trained on
    fr = array.array("h", bytes(2 * 128 * ch))
    out = []
    for start in range(0, frames - 128 + 1, 64):
        for i in range(128):
            for c in range(ch):
                fr[i * ch + c] = raw[(start + i) * shape[1] + c]
        y = array.array("h", bytes(2 * ex.n_features))
        ex.extract(fr, y)
        out.append(y)
    return out


def test_shipped_model_agrees_on_every_window_and_the_pipeline_step_allocates_nothing():
    meta = _shipped()
    nt, nn, nl = meta["trees"], meta["nodes"], meta["leaves"]
    nc = len(meta["classes"])
    c = device_trees.new(nt, nn, nl)
    v = trees.Trees(nt, nn, nl, device_trees.vote)
    for t in (c, v):
        with open("models/default/model.csv") as f:
            trees_csv.load(f, t)
    wins = _windows()
    assert len(wins) > 400
    seen = set()
    for x in wins:
        k = v.classify(x)
        assert c.classify(x) == k and list(c.votes()) == list(v.votes())
        seen.add(k)
    assert len(seen) == nc  # every class of the shipped model occurs
    # The pipeline's step (pipeline._classify): the module's predict, then the smoothing kernel; and classify().
    x = array.array("h", wins[0])
    hist = array.array("H", bytes(2 * 3 * nc))
    model = c.model
    out = c.out
    model.predict(x, out)
    c.classify(x)
    gc.collect()
    micropython.heap_lock()
    try:
        for i in range(len(wins)):
            w = wins[i]
            for j in range(len(x)):
                x[j] = w[j]
            model.predict(x, out)
            device_trees.smooth(out, 1, nt, hist, (i % 3) * nc, 3, nc)
            c.classify(x)
    finally:
        micropython.heap_unlock()


def test_pipeline_classify_step_matches_the_viper_evaluator():
    # pipeline.Pipeline._classify with a model whose evaluator is emlearn_trees, beside one with the viper Trees,
    # over the same features: the same predictions (class, confidence) and events for every window.
    from sensorbox.device.log import Bus
    from sensorbox.device.analysis.models import make
    from sensorbox.device.analysis.pipeline import Pipeline
    from devtest import inner, quiet_log

    meta = _shipped()
    meta["features"] = len(meta["features"])
    nt, nn, nl = meta["trees"], meta["nodes"], meta["leaves"]
    nc = len(meta["classes"])
    got = []
    wins = _windows()
    for ev in (device_trees.new(nt, nn, nl), trees.Trees(nt, nn, nl, device_trees.vote)):
        with open("models/default/model.csv") as f:
            trees_csv.load(f, ev)
        m = make(meta, ev, "default")
        m.gids = list(range(nc))  # the store's class ids (models.py asks the store for them when a model loads)
        assert (m.emlearn is not None) == (type(ev).__name__ == "CTrees")

        class Dev:
            bus = Bus(quiet_log())

        pipe = Pipeline(Dev())
        seen = []
        Dev.bus.subscribe("predictions", lambda topic, t, val: seen.append(val))
        Dev.bus.subscribe("events", lambda topic, t, val: seen.append((val["from"], val["to"])))
        hist = array.array("H", bytes(2 * 3 * nc))
        nh = 0
        classify = inner(pipe, "_classify")
        for x in wins:
            classify(m, x, hist, nh % 3, min(nh + 1, 3), 500, nh)
            nh += 1
        got.append(seen)
    assert len(got[0]) > 400 and got[0] == got[1]
    assert len([e for e in got[0] if isinstance(e[0], str)]) > 5  # class changes happened


def test_fft_within_4_units_of_fft_q15_and_features_close():
    from sensorbox.shared import kernels_emlearn

    assert "emlearn_fft" in kernels.EMLEARN
    rng = Rng(5)
    for n in (16, 64, 128, 256):
        e = kernels_emlearn.FFT(n)
        q = kernels.FFTQ(n)
        assert type(kernels.fft(n)) is kernels_emlearn.FFT
        worst = 0
        for case in range(20):
            re = array.array("h", bytes(2 * n))
            im = array.array("h", bytes(2 * n))
            amp = (16384, 1000, 30)[case % 3]
            for i in range(n):
                re[i] = rng.below(2 * amp + 1) - amp
                im[i] = rng.below(2 * amp + 1) - amp if case % 2 else 0
            r2, i2 = array.array("h", re), array.array("h", im)
            r3, i3 = array.array("h", re), array.array("h", im)
            e.run(re, im)
            q.run(r2, i2)
            kernels_py.fft_q15(r3, i3, n, q.tw)
            assert list(r2) == list(r3) and list(i2) == list(i3)  # viper and plain: identical
            for i in range(n // 2 + 1):  # the one-sided spectrum kernels_emlearn.FFT writes back
                worst = max(worst, abs(re[i] - r2[i]), abs(im[i] - i2[i]))
        print("FFT", n, "points: largest difference to fft_q15", worst, "units")
        assert worst <= 4, (n, worst)
    # Features of the recording through emlearn_fft against the fixed-point FFT
    names = features.names(3)
    band = [i for i in range(len(names)) if names[i][-3:-1] == "_e"]
    domf = [i for i in range(len(names)) if names[i].endswith("_domf")]
    with open(EXCERPT, "rb") as f:
        _, shape, off = npy.parse_header(f.read(128))
        f.seek(off)
        raw = array.array("h", f.read(2 * shape[1] * 6000))
    ex_e = features.Extractor(3, 128)
    ex_q = features.Extractor(3, 128)
    ex_q._fft = kernels.FFTQ(128)
    assert type(ex_e._fft) is kernels_emlearn.FFT
    meta = _shipped()
    t = trees.Trees(meta["trees"], meta["nodes"], meta["leaves"], device_trees.vote)
    with open("models/default/model.csv") as f:
        trees_csv.load(f, t)
    fr = array.array("h", bytes(2 * 128 * 3))
    a = array.array("h", bytes(2 * len(names)))
    b = array.array("h", bytes(2 * len(names)))
    worst_e = same_domf = same_class = windows = 0
    for start in range(0, 6000 - 128 + 1, 64):
        for i in range(128):
            for c in range(3):
                fr[i * 3 + c] = raw[(start + i) * shape[1] + c]
        ex_e.extract(fr, a)
        ex_q.extract(fr, b)
        for i in range(len(names)):
            if i in band:
                worst_e = max(worst_e, abs(a[i] - b[i]))
            elif i not in domf:
                assert a[i] == b[i], (names[i], a[i], b[i])
        same_domf += sum(1 for i in domf if a[i] == b[i])
        same_class += t.classify(a) == t.classify(b)
        windows += 1
    print("features, {} windows: band energies within {} (64*log2), domf the same in {:.1f} %, class in {}".format(
        windows, worst_e, 100 * same_domf / (windows * len(domf)), same_class))
    assert worst_e <= 12
    assert same_domf >= 0.98 * windows * len(domf)
    assert same_class >= 0.98 * windows


def _tone(n, freq, amp, rate=16000, phase=0.0):
    x = array.array("h", bytes(2 * n))
    for i in range(n):
        x[i] = int(amp * math.sin(2 * math.pi * freq * i / rate + phase))
    return x


def test_iir_within_2_units_of_iir_q_and_sound_levels_within_0_02_db():
    from sensorbox.shared import kernels_emlearn

    assert "emlearn_iir" in kernels.EMLEARN
    rng = Rng(8)
    for rate in (16000, 8000):
        q28 = A_WEIGHTING[rate]
        assert type(kernels.iir(q28)) is kernels_emlearn.IIR
        worst = 0
        signals = [_tone(4000, 1000, 32000, rate), _tone(4000, 100, 20000, rate), _tone(4000, 5000, 32767, rate)]
        noise = array.array("h", bytes(8000))
        for i in range(4000):
            noise[i] = rng.below(40001) - 20000
        signals.append(noise)
        for x in signals:
            e = kernels_emlearn.IIR(q28)
            q = kernels.IIRQ(q28)
            ye = array.array("h", bytes(2 * len(x)))
            yq = array.array("h", bytes(2 * len(x)))
            i = 0
            step = 1
            while i < len(x):  # chunks of every length from 1 up: the float buffers of 128, 64, ..., 1
                k = min(step, len(x) - i)
                xe = array.array("h", bytes(2 * k))
                for j in range(k):
                    xe[j] = x[i + j]
                xq = array.array("h", xe)
                e.run(xe, xe, k)
                q.run(xq, xq, k)
                for j in range(k):
                    ye[i + j] = xe[j]
                    yq[i + j] = xq[j]
                i += k
                step = step % 300 + 7
            for j in range(len(x)):
                worst = max(worst, abs(ye[j] - yq[j]))
        print("A-weighting at", rate, "Hz: largest difference to iir_q", worst, "units")
        assert worst <= 2, (rate, worst)
    # the sound meter: emlearn_iir against the fixed-point filter, tone and noise, Fast, 1 s intervals
    for sig in ("tone", "noise", "quiet"):
        res = []
        for use in ("emlearn", "q"):
            m = SoundLevelMeter(16000, "A", "fast", -26.0, 1000)
            if use == "q":
                m.filter = kernels.IIRQ(A_WEIGHTING[16000])
            out = []
            m.on_interval = out.append
            r2 = Rng(3)
            buf = array.array("h", bytes(512))
            for c in range(16000 * 3 // 256 + 1):
                for i in range(256):
                    if sig == "tone":
                        buf[i] = int(10000 * math.sin(2 * math.pi * 1000 * (c * 256 + i) / 16000))
                    elif sig == "noise":
                        buf[i] = r2.below(20001) - 10000
                    else:
                        buf[i] = r2.below(41) - 20
                m.process(buf, 256)
            res.append(out)
        assert len(res[0]) == 3 and len(res[1]) == 3
        worst = max(abs(a - b) for ra, rb in zip(res[0], res[1]) for a, b in zip(ra, rb))
        print("sound meter,", sig, ": largest level difference", worst / 100, "dB", res[0][-1], res[1][-1])
        assert worst <= 2, (sig, res)  # centi-dB


def test_sound_meter_chunks_allocate_nothing_with_emlearn_iir():
    from sensorbox.shared import kernels_emlearn

    m = SoundLevelMeter(16000, "A", "fast", -26.0, 1000)
    assert type(m.filter) is kernels_emlearn.IIR
    x = _tone(256, 1000, 8000)
    y = array.array("h", x)
    m.process(y, 255)  # every float buffer once (128 + 64 + ... + 1)
    gc.collect()
    micropython.heap_lock()
    try:
        for c in range(40):  # 40 chunks: within one 1 s interval (62.5 chunks), of sizes 256, 255, ...
            n = 256 - c
            for i in range(256):
                y[i] = x[i]
            m.process(y, n)
    finally:
        micropython.heap_unlock()


def test_float32_conversions_agree_with_array_f():
    # kernels_emlearn.to_f32/from_f32 work on the raw bits of an array('f'); the array's own float conversion is the
    # reference (independent of the doubles, which use these conversions themselves).
    from sensorbox.shared.kernels_emlearn import from_f32, to_f32

    h = array.array("h", [0])
    f = array.array("f", [0.0])
    for v in range(-32768, 32768):
        h[0] = v
        to_f32(h, 0, f, 1)
        assert f[0] == v, (v, f[0])
    vals = [0.0, 0.24, 0.25, 0.49, 0.5, 0.51, -0.49, -0.5, -0.51, 1.5, -1.5, 2.5, -2.5, 32766.5, 32767.4, 32767.5,
            1e9, -1e9, -32768.4, -32768.5, -32769.0, 1e-30, -1e-30, 1e38 * 10, -1e38 * 10, 123.456, -123.456]
    f = array.array("f", vals)
    out = array.array("h", bytes(2 * (len(vals) + 3)))
    for sh in (0, 1, 7, 8):
        from_f32(f, out, 3, len(vals), sh)  # at an offset
        for i in range(len(vals)):
            x = f[i] / (1 << sh)
            w = math.floor(x + 0.5) if abs(x) < 1e6 else (32767 if x > 0 else -32768)
            assert out[3 + i] == max(-32768, min(32767, w)), (sh, vals[i], out[3 + i])
    x = array.array("h", [7, -3, 1000, -32768])
    g = array.array("f", bytes(4 * 4))
    to_f32(x, 1, g, 3)  # from an offset
    assert list(g) == [-3.0, 1000.0, -32768.0, 0.0]


def test_neighbors_in_emlearn_agree_with_the_shared_evaluator_ties_by_index():
    from sensorbox.shared.neighbors import Neighbors

    rng = Rng(5)
    cases = ties = 0
    for case in range(12):
        nf = 1 + rng.below(6)
        m = 2 + rng.below(40)
        k = 1 + rng.below(min(m, 7))
        nc = 1 + rng.below(10)
        span = 1 + rng.below(4) if case % 2 else 1 + rng.below(1000)  # small spans: many equal distances
        a = Neighbors(m, nf, k, nf, nc)
        b = Neighbors(m, nf, k, nf, nc, emlearn_neighbors.new(m, nf, k))
        assert b.items is None
        v = array.array("h", bytes(2 * nf))
        for i in range(m):
            for j in range(nf):
                v[j] = rng.below(2 * span + 1) - span
            lab = rng.below(nc)
            a.additem(v, lab)
            b.additem(v, lab)
        for q in range(40):
            for j in range(nf):
                v[j] = rng.below(2 * span + 3) - span - 1
            na = a.nearest(v)
            nb = b.nearest(v)
            assert na == nb == k
            assert list(a.near) == list(b.near) and list(a.dist) == list(b.dist), (case, q, list(a.near),
                                                                                    list(b.near))
            if k < m and a.dist[k - 1] in [a.dist[j] for j in range(k - 1)]:
                ties += 1
            cases += 1
    print("neighbours: {} queries, {} with equal distances among the k nearest".format(cases, ties))
    assert ties > 20


def test_knn_and_anomaly_models_through_emlearn_equal_the_shared_files_answers():
    from sensorbox.shared import neighbors_csv

    rng = Rng(9)
    for kind in ("knn", "anomaly"):
        nf = 5
        m = 30
        nc = 1 if kind == "anomaly" else 4
        lines = ["k,3", "x,8", "f,{}".format(nf), "c,{}".format(nc), "m,{}".format(m)]
        if kind == "anomaly":
            lines.append("t,40")
        lines += ["s,{},{},{},{}".format(j + 1, rng.below(100) - 50, 1 + rng.below(500), 4) for j in range(nf)]
        lines += ["i,{},".format(rng.below(nc)) + ",".join(str(rng.below(60) - 30) for _ in range(nf))
                  for _ in range(m)]
        a = neighbors_csv.load(lines)
        b = neighbors_csv.load(lines, None, emlearn_neighbors.new)
        x = array.array("h", bytes(16))
        for q in range(200):
            for j in range(8):
                x[j] = rng.below(4000) - 2000
            if kind == "knn":
                assert a.classify(x) == b.classify(x)
                assert list(a.votes()) == list(b.votes())
            else:
                assert a.score(x) == b.score(x)


def test_a_neighbours_model_loads_where_the_heap_has_no_block_of_its_examples_size():
    # A device's heap after a while: plenty free, but in pieces smaller than a model's examples (the knn model of
    # tests/host/test_model_push.py: 224 x 24 int16, 10.7 KB; max free block 4-7 KB at 160wK, 96 KB free, in 2 of
    # 3 pushes). emlearn's C model wants them in one block: the loader falls back to the plain evaluator, whose
    # examples are in arrays of at most CHUNK_BYTES, with the same answers as the C model.
    from sensorbox.shared import neighbors, neighbors_csv

    rng = Rng(3)
    nf = 8
    m = 300  # 4.8 KB of examples
    lines = ["k,3", "x,10", "f,{}".format(nf), "c,5", "m,{}".format(m)]
    lines += ["s,{},{},{},{}".format(j + 2, rng.below(100) - 50, 1 + rng.below(500), 4) for j in range(nf)]
    lines += ["i,{},".format(rng.below(5)) + ",".join(str(rng.below(200) - 100) for _ in range(nf))
              for _ in range(m)]
    c = neighbors_csv.load(lines, None, emlearn_neighbors.new)  # a whole heap: emlearn holds them
    assert c.c is not None and c.items is None
    hold = []
    try:
        while True:
            hold.append(bytearray(2048))
    except MemoryError:
        pass
    for i in range(0, len(hold), 2):  # every other one back: half the heap free, in 2 KB holes
        hold[i] = None
    gc.collect()
    try:
        emlearn_neighbors.new(m, nf, 3)
        raise AssertionError("the heap still had a block of the examples' size")
    except MemoryError:
        pass
    b = neighbors_csv.load(lines, None, emlearn_neighbors.new)
    hold = None
    assert b.c is None and len(b.items) == 5 and max(len(a) for a in b.items) * 2 <= neighbors.CHUNK_BYTES
    x = array.array("h", bytes(20))
    for q in range(200):
        for j in range(10):
            x[j] = rng.below(3000) - 1500
        assert b.classify(x) == c.classify(x) and list(b.votes()) == list(c.votes())
        assert list(b.near) == list(c.near) and list(b.dist) == list(c.dist)
