"""k-nearest neighbours (sensorbox.shared.neighbors, files read by neighbors_csv): scaling, (distance, index) order, the vote and its tie rule,
the anomaly score, the model file and its refusals; and the same answers on every interpreter (checksums over a
pseudo-random model computed once on CPython)."""

import array

from sensorbox.shared import neighbors as N
from sensorbox.shared import neighbors_csv as NC
from testrng import Rng

# 2 inputs used as they are (offset 0, mul 8192, shift 13: x1), 3 classes, k = 3.
MODEL = """k,3
x,4
f,2
c,3
m,6
s,1,0,8192,13
s,3,0,8192,13
i,0,0,0
i,1,3,4
i,1,-3,-4
i,2,6,8
i,2,0,5
i,0,100,100"""


def _model(text=MODEL):
    return NC.load(text.split("\n"))


def test_distances_order_and_vote():
    m = _model()
    x = array.array("h", [999, 0, -999, 0])  # inputs 0 and 2 are not used
    assert m.classify(x) == 1
    # distances from (0, 0): 0, 5, 5, 10, 5, 141 -> nearest 0, then the 5s by index: 1, 2 (4 is 4th)
    assert list(m.near) == [0, 1, 2] and list(m.dist) == [0, 5, 5]
    assert list(m.votes()) == [1, 2, 0]
    assert m.score(x) == 5 and m.last == 5  # (the pipeline's event reads it)
    # isqrt floors: (1, 1) is at distance 1 from item 0 (sqrt 2 = 1.41), 3 from item 1 (sqrt 13 = 3.6)
    x[1], x[3] = 1, 1
    assert m.classify(x) == 0 and list(m.dist) == [1, 3, 4] and list(m.near) == [0, 1, 4]  # 1 vote each


def test_vote_tie_goes_to_the_lowest_class():
    text = MODEL.replace("k,3", "k,2").replace("i,1,-3,-4", "i,1,-3,-40")
    m = _model(text)
    x = array.array("h", [0, 1, 0, 2])  # nearest: item 0 (class 0, d 2), item 1 (class 1, d 3)
    assert m.classify(x) == 0 and list(m.votes()) == [1, 1, 0]


def test_scaling_is_integer_and_clamped():
    m = N.Neighbors(1, 3, 1, 3, 2)
    m.setscale(0, 100, 16383, 0)  # x0 - 100, times 16383: clamped
    m.setscale(1, -32768, 1, 6)  # (x1 + 32768) >> 6
    m.setscale(2, 5, 12000, 14)  # floor division, also for negative values
    q = m.scale(array.array("h", [32767, 32767, -32768]))
    assert list(q) == [N.LIMIT, N.LIMIT if 65535 >> 6 > N.LIMIT else 65535 >> 6, ((-32773 * 12000) >> 14)
                       if ((-32773 * 12000) >> 14) >= -N.LIMIT else -N.LIMIT]
    q = m.scale(array.array("h", [101, -32768 + 640, -2]))
    assert list(q) == [16383 if 16383 <= N.LIMIT else N.LIMIT, 10, (-7 * 12000) >> 14]
    assert list(q)[2] == -6  # floor, not truncation toward zero


def test_worst_case_sums_stay_small_ints():
    # 127 features all at opposite limits: the largest squared distance a model file can hold
    nf = N.MAX_FEATURES
    m = N.Neighbors(2, nf, 1, nf, 2)
    for j in range(nf):
        m.setscale(j, 0, 8192, 13)
    m.additem(array.array("h", [N.LIMIT] * nf), 0)
    m.additem(array.array("h", [-N.LIMIT] * nf), 1)
    x = array.array("h", [-32768] * nf)
    assert m.classify(x) == 1 and m.dist[0] == 0
    x = array.array("h", [32767] * nf)
    assert m.classify(x) == 0
    s = nf * (2 * N.LIMIT) ** 2
    assert s < 2 ** 30
    m.nearest(m.scale(array.array("h", [0] * nf)))
    # from 0 both items are at sqrt(127) * 1448 = 16318.6
    assert list(m.dist) == [16318] and list(m.near) == [0]


def _rng(seed):
    return Rng(seed).below


def test_same_answers_everywhere():
    # 40 examples x 12 features, 4 classes, k = 5, values from a small LCG; 300 queries. The checksums below were
    # computed on CPython; MicroPython and WebAssembly must give the same.
    rnd = _rng(7)
    nf, ni = 12, 20
    lines = ["k,5", "x,{}".format(ni), "f,{}".format(nf), "c,4", "m,40", "t,4000"]
    for j in range(nf):
        lines.append("s,{},{},{},{}".format((j * 7) % ni, rnd(2000) - 1000, 8192 + rnd(8192), 10 + rnd(6)))
    for i in range(40):
        lines.append("i,{},".format(i % 4) + ",".join(str(rnd(2 * N.LIMIT + 1) - N.LIMIT) for _ in range(nf)))
    m = NC.load(lines, expect=(40, nf, 5))
    assert m.threshold == 4000
    x = array.array("h", bytes(2 * ni))
    classes = [0, 0, 0, 0]
    total = 0
    flagged = 0
    order = 0
    for q in range(300):
        for j in range(ni):
            x[j] = rnd(65536) - 32768 if q % 3 == 0 else rnd(4000) - 2000
        c = m.classify(x)
        classes[c] += 1
        for j in range(5):
            order = (order * 31 + m.near[j]) % 1000003
        s = m.score(x)
        total += s
        flagged += s > m.threshold
    assert (classes, total, flagged, order) == ([107, 89, 61, 43], 1272740, 203, 282463), (
        classes, total, flagged, order)


def _refused(text, words, expect=None):
    try:
        NC.load(text.split("\n"), expect)
    except N.NeighborsError as e:
        for w in words:
            assert w in str(e), (str(e), w)
        return
    raise AssertionError("accepted: " + text)


def test_broken_models_are_refused_with_reasons():
    lines = MODEL.split("\n")
    _refused("\n".join(lines[:-1]), ["5 of 6 items", "truncated"])
    _refused("\n".join(lines[:-1]) + "\ni,0,100", ["line 13", "4 fields"])
    _refused(MODEL.replace("i,0,100,100", "i,0,100,40000"), ["line 13", "beyond"])
    _refused(MODEL.replace("i,2,0,5", "i,3,0,5"), ["class 3"])
    _refused(MODEL.replace("s,3,0", "s,4,0"), ["input 4"])
    _refused(MODEL.replace("s,3,0,8192", "s,3,0,16384"), ["mul 16384"])
    _refused(MODEL.replace("m,6", "m,5"), ["more than 5 items"])
    _refused(MODEL + "\nk,1", ["header line after the data"])
    _refused("k,3\ns,1,0,1,1", ["before the k, x, f, c and m"])
    _refused("\n".join(lines[:5] + lines[6:]), ["item before all 2 scaling"])
    _refused("hello,world", ["not a neighbours model"])
    _refused(MODEL.replace("k,3", "k,9"), ["capacity"])
    _refused(MODEL, ["meta.json says 7 x 2, k 3"], expect=(7, 2, 3))
    _refused(MODEL.replace("i,0,0,0", "i,0,0,x"), ["line 8"])
