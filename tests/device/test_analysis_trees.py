"""The viper tree kernel gives the same votes and class as the plain-Python kernel over the same arrays, on random
forests and inputs with int16 extremes, and allocates nothing per prediction. (The viper evaluator is made
explicitly: with SENSORBOX_NATMODS, ``device_trees.new`` gives emlearn_trees, tested in test_emlearn.py.)"""

import array

import micropython

from forestgen import Rng, forest_csv, inputs
from sensorbox.device.analysis import trees as device_trees
from sensorbox.shared import trees, trees_csv

# The random forests are held as CSV lines (tens of KB); the kernel itself allocates nothing.
HEAPSIZE = "1024wK"


def test_viper_matches_plain_on_random_forests():
    rng = Rng(7)
    checked = 0
    for case in range(6):
        n_features = 1 + rng.below(12)
        n_classes = 2 + rng.below(6)
        lines = forest_csv(rng, n_trees=1 + rng.below(12), depth=1 + rng.below(9), n_features=n_features,
                           n_classes=n_classes)
        n_nodes = len([line for line in lines if line.startswith("n,")])
        fast = trees.Trees(16, n_nodes, 16, device_trees.vote)
        plain = trees.Trees(16, n_nodes, 16)
        trees_csv.load(lines, fast)
        trees_csv.load(lines, plain)
        assert fast.kernel is device_trees.vote and plain.kernel is trees.vote
        assert list(fast.nodes) == list(plain.nodes)
        classes = set()
        for x in inputs(rng, 300, n_features):
            c = plain.classify(x)
            assert fast.classify(x) == c
            assert list(fast.votes()) == list(plain.votes())
            classes.add(c)
            checked += 1
        assert len(classes) > 1
    assert checked == 1800


def test_threshold_edges_signed_compare():
    # one node on feature 0: go left (class 1) if x < thr; thresholds and inputs at the int16 extremes
    for thr in (-32768, -1, 0, 1, 32767):
        t = trees.Trees(1, 1, 2, device_trees.vote)
        trees_csv.load(["f,1", "c,2", "l,0", "l,1", "r,0", "n,0,{},-2,-1".format(thr)], t)
        for v in (-32768, -32767, -2, -1, 0, 1, 2, 32766, 32767):
            assert t.classify(array.array("h", [v])) == (1 if v < thr else 0), (thr, v)


def test_predict_allocates_nothing():
    rng = Rng(3)
    lines = forest_csv(rng, n_trees=10, depth=8, n_features=10, n_classes=5)
    t = trees.Trees(10, len(lines), 5, device_trees.vote)
    trees_csv.load(lines, t)
    xs = inputs(rng, 20, 10)
    t.classify(xs[0])
    micropython.heap_lock()
    try:
        for x in xs:
            t.classify(x)
    finally:
        micropython.heap_unlock()


def test_an_evaluator_refills_after_its_modules_were_unloaded():
    # The device keeps a model's evaluator while trees and trees_csv are unloaded and loaded again for the next
    # model (models.py, lazy): its class is then not the new module's Trees, and refilling it must still work.
    import sys

    from sensorbox.device import lazy

    rng = Rng(9)
    lines = forest_csv(rng, n_trees=5, depth=5, n_features=6, n_classes=3)
    n = len([line for line in lines if line.startswith("n,")])
    ev = trees.Trees(5, n, 8, device_trees.vote)
    saved = {m: sys.modules.pop(m) for m in ("sensorbox.shared.trees_csv", "sensorbox.shared.trees",
                                             "sensorbox.device.analysis.trees") if m in sys.modules}
    try:
        fresh = lazy.load("sensorbox.shared.trees_csv")
        assert type(ev) is not sys.modules["sensorbox.shared.trees"].Trees  # another class object now
        ev.reset()
        fresh.load(lines, ev)
        lazy.unload("sensorbox.shared.trees_csv")
    finally:
        sys.modules.update(saved)
    plain = trees.Trees(5, n, 8)
    trees_csv.load(lines, plain)
    for x in inputs(rng, 50, 6):
        assert ev.classify(x) == plain.classify(x)
        assert list(ev.votes()) == list(plain.votes())
