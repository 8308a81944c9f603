"""Random tree ensembles in emlearn's CSV format, and random int16 inputs, for kernel tests and benchmarks.
Deterministic (the tests' generator, testrng.py) so MicroPython and CPython make the same forests."""

import array

import testrng


class Rng(testrng.Rng):
    def __init__(self, seed=1):
        super().__init__(seed & 0x7FFFFFFF or 1, 4)

    def int16(self):
        # Mostly small values, sometimes the extremes, so edge cases get exercised.
        r = self.below(10)
        if r == 0:
            return -32768
        if r == 1:
            return 32767
        return self.below(2001) - 1000


def forest_csv(rng, n_trees=10, depth=8, n_features=10, n_classes=5):
    """Lines of a random forest: each tree is full to a random depth <= ``depth``; nodes in preorder."""
    nodes = []  # [feature, threshold, left, right] with absolute children or leaf codes
    roots = []

    def build(d):
        idx = len(nodes)
        nodes.append(None)
        if d >= depth or (d > 1 and rng.below(5) == 0):
            kids = []
            for _ in range(2):
                kids.append(-(rng.below(n_classes)) - 1)
        else:
            kids = []
            for _ in range(2):
                if rng.below(4) == 0:
                    kids.append(-(rng.below(n_classes)) - 1)
                else:
                    kids.append(build(d + 1))
        thr = rng.int16() if rng.below(8) else 32767
        nodes[idx] = [rng.below(n_features), thr, kids[0], kids[1]]
        return idx

    for _ in range(n_trees):
        roots.append(build(0))
    lines = ["f,{}".format(n_features), "c,{}".format(n_classes), "lb,0"]
    for c in range(n_classes):
        lines.append("l,{}".format(c))
    for r in roots:
        lines.append("r,{}".format(r))
    for i, (f, t, a, b) in enumerate(nodes):
        lines.append("n,{},{}.0,{},{}".format(f, t, a - i if a >= 0 else a, b - i if b >= 0 else b))
    return lines


def inputs(rng, n, n_features):
    out = []
    for _ in range(n):
        x = array.array("h", bytes(2 * n_features))
        for j in range(n_features):
            x[j] = rng.int16()
        out.append(x)
    return out
