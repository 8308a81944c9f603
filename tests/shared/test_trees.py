"""Tree ensembles in emlearn's CSV format (sensorbox.shared.trees, read by trees_csv): loading, the go-left-if-less
rule, threshold truncation, hard majority vote with first-class tie break, and rejection of broken or oversized models."""

import array

from sensorbox.shared import trees, trees_csv

# Three trees over 2 features, 3 classes. Leaves: 0 -> class 0, 1 -> class 1, 2 -> class 2.
# Tree A (root 0): x0 < 10 ? class 0 : (x1 < -5 ? class 1 : class 2)
# Tree B (root 2): x1 < 0.9 (truncates to 0) ? class 1 : class 2
# Tree C (root 3): x0 < -3.7 (truncates to -3) ? class 2 : class 0
MODEL = """f,2\r
c,3\r
lb,0\r
l,0\r
l,1\r
l,2\r
r,0\r
r,2\r
r,3\r
n,0,10.0,-1,1\r
n,1,-5.0,-2,-3\r
n,1,0.9,-2,-3\r
n,0,-3.7,-3,-1"""


def reference(x):
    """The same three trees written out by hand."""
    a = 0 if x[0] < 10 else (1 if x[1] < -5 else 2)
    b = 1 if x[1] < 0 else 2
    c = 2 if x[0] < -3 else 0
    votes = [0, 0, 0]
    for k in (a, b, c):
        votes[k] += 1
    best, most = -1, 0
    for k in range(3):
        if votes[k] > most:
            best, most = k, votes[k]
    return best, votes


def loaded(text=MODEL, cap=(4, 8, 4)):
    t = trees.Trees(*cap)
    counts = trees_csv.load(text.split("\n"), t)
    return t, counts


def test_loads_counts_and_arrays():
    t, counts = loaded()
    assert counts == (2, 3, 3, 4, 3)
    assert (t.n_features, t.n_classes, t.n_trees, t.n_nodes, t.n_leaves) == (2, 3, 3, 4, 3)
    assert t.outputs() == 3
    # children become absolute indices; thresholds are truncated toward zero like the device loader's int(float())
    assert list(t.nodes[0:8]) == [0, 10, -1, 1, 1, -5, -2, -3]
    assert t.nodes[2 * 4 + 1] == 0 and t.nodes[3 * 4 + 1] == -3
    assert list(t.roots[:3]) == [0, 2, 3]


def test_predictions_match_hand_written_trees_on_a_grid():
    t, _ = loaded()
    x = array.array("h", [0, 0])
    out = array.array("f", [0, 0, 0])
    seen = set()
    for x0 in (-32768, -100, -4, -3, -2, 0, 9, 10, 11, 32767):
        for x1 in (-32768, -6, -5, -4, -1, 0, 1, 32767):
            x[0] = x0
            x[1] = x1
            want, votes = reference((x0, x1))
            assert t.classify(x) == want, (x0, x1)
            assert list(t.votes()) == votes
            t.predict(x, out)
            assert [round(v * 3) for v in out] == votes
            seen.add(want)
    assert seen == {0, 1, 2}


def test_tie_goes_to_the_first_class():
    # two trees: one votes class 1, one votes class 0 -> tie -> class 0 (emlearn's strict ">" argmax)
    text = "f,1\nc,2\nlb,0\nl,0\nl,1\nr,0\nr,1\nn,0,0,-2,-2\nn,0,0,-1,-1"
    t, _ = loaded(text)
    assert t.classify(array.array("h", [5])) == 0
    assert list(t.votes()) == [1, 1]


def test_bytes_lines_and_unknown_kinds_are_accepted():
    t = trees.Trees(4, 8, 4)
    lines = [line.encode() for line in MODEL.split("\n")] + [b"x,whatever", b""]
    assert trees_csv.load(lines, t)[3] == 4


def _rejects(text, words, cap=(4, 8, 4)):
    t = trees.Trees(*cap)
    try:
        trees_csv.load(text.split("\n"), t)
    except trees.TreesError as e:
        for w in words:
            assert w in str(e), (str(e), w)
        return
    raise AssertionError("accepted: " + text)


def test_rejects_broken_models_with_reasons():
    lines = MODEL.split("\n")
    _rejects("\n".join(lines[:-1]) + "\nn,0,-3.7,-3", ["line 13", "5 fields"])  # truncated mid-line
    _rejects("\n".join(lines[:-1]) + "\nn,0,-3.7,-3,x", ["line 13"])  # garbage number
    _rejects("\n".join(lines[:-2]), ["tree 2: root 3 does not exist"])  # truncated at a line end
    _rejects("hello,world\n", ["not an emlearn tree model"])
    _rejects("", ["not an emlearn tree model"])
    _rejects("l,0\n" + MODEL, ["line 1", "before the f and c"])
    _rejects(MODEL.replace("lb,0", "lb,8"), ["leaf_bits"])
    _rejects(MODEL.replace("n,0,10.0,-1,1", "n,5,10.0,-1,1"), ["feature 5"])
    _rejects(MODEL.replace("n,0,10.0,-1,1", "n,0,10.0,-1,0"), ["not a later node"])  # a cycle
    _rejects(MODEL.replace("n,0,10.0,-1,1", "n,0,10.0,-9,1"), ["node 0: leaf 8 does not exist"])
    _rejects(MODEL.replace("l,2", "l,7"), ["class 7"])
    _rejects(MODEL.replace("n,0,10.0,-1,1", "n,0,99999,-1,1"), ["not int16"])


def test_capacity_is_enforced():
    _rejects(MODEL, ["more than 3 nodes"], cap=(4, 3, 4))
    _rejects(MODEL, ["more than 2 trees"], cap=(2, 8, 4))
    _rejects(MODEL, ["more than 2 leaves"], cap=(4, 8, 2))


def test_short_input_is_refused():
    t, _ = loaded()
    try:
        t.classify(array.array("h", [1]))
    except trees.TreesError as e:
        assert "needs 2" in str(e)
        return
    raise AssertionError("accepted one feature")


def _fed(cols):
    t = trees.Trees(4, 8, 4)
    ld = trees_csv.Loader(t, cols)
    for line in MODEL.split("\n"):
        ld.feed(line)
    return t, ld


def test_a_part_of_a_longer_vector_than_a_tree_numbers_keeps_its_own_numbering():
    # a model on 2 of 86 features: its nodes read them where they are in the whole vector (n_features 86); of 169
    # (a 6-channel sensor's: past the 127 a tree numbers), its own numbering stays and ``inputs`` says where they are
    t, ld = _fed((bytearray([5, 80]), 86))
    assert t.n_features == 86 and t.nodes[0] == 5 and t.nodes[4] == 80 and ld.inputs is None
    pos = bytearray([5, 130])
    t, ld = _fed((pos, 169))
    assert t.n_features == 2 and t.nodes[0] == 0 and t.nodes[4] == 1 and ld.inputs is pos
    x = array.array("h", [12, -7])
    assert t.classify(x) == reference(x)[0]
