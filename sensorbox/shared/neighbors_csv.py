"""Reading a k-nearest-neighbours model file (format: ``sensorbox.shared.neighbors``) into a ``Neighbors``, with
complete validation: needed only while a model loads (a device keeps it in RAM only then, as ``trees_csv``)."""

from sensorbox.shared.neighbors import LIMIT, Neighbors, NeighborsError
from sensorbox.shared.trees_csv import LineReader

_HEADER = "kxfcmt"


class Loader(LineReader):
    """Parse a model file a line at a time (``feed``), so a device can yield between lines; ``finish`` checks the
    counts and returns the model. ``expect``: (items, features, k) as meta.json announces them, and optionally its
    classes and threshold (-1: none, a knn model), or None; ``cnew``:
    ``emlearn_neighbors.new`` to hold the examples in emlearn's C model (a device with it installed), or None;
    ``cols``: as ``trees_csv.Loader``'s (a model on a part of the features picks its inputs out of the whole
    vector)."""

    inputs = None  # (a trees_csv.Loader's, for a model on a part of more than 127 features: never here)

    error = NeighborsError

    def __init__(self, expect=None, cnew=None, cols=None):
        self.cnew = cnew
        self.cols = cols
        self.head = {}
        self.model = None
        self.lineno = 0
        self.expect = expect

    def line(self, kind, tok):
        """One line's fields into the model (``feed`` calls it)."""
        if kind in ("s", "i"):
            m = self.model or self._new_model()
            if kind == "s":
                if len(tok) != 5:
                    raise NeighborsError("a scaling line has 5 fields")
                m.setscale(int(tok[1]), int(tok[2]), int(tok[3]), int(tok[4]))
                return
            if m.n_scales != m.n_features:
                raise NeighborsError("an item before all {} scaling lines".format(m.n_features))
            if len(tok) != m.n_features + 2:
                raise NeighborsError("an item line has {} fields".format(m.n_features + 2))
            q = m.query
            for j in range(m.n_features):
                v = int(tok[j + 2])
                if v > LIMIT or v < -LIMIT:  # before the int16 store (which wraps on MicroPython)
                    raise NeighborsError("item {}: value {} beyond +-{}".format(m.n_items, v, LIMIT))
                q[j] = v
            m.additem(q, int(tok[1]))
        elif len(kind) == 1 and kind in _HEADER:
            if len(tok) != 2:
                raise NeighborsError("a header line has 2 fields")
            if self.model is not None:
                raise NeighborsError("header line after the data")
            self.head[kind] = int(tok[1])
        # other kinds are ignored, as emlearn's loaders do

    def _new_model(self):
        h = self.head
        for key in "kxfcm":
            if key not in h:
                raise NeighborsError("data before the k, x, f, c and m lines")
        e = self.expect
        if e is not None and (h["m"], h["f"], h["k"]) != tuple(e[:3]):
            raise NeighborsError("the file has {} items x {} features, k {}; meta.json says {} x {}, k {}".format(
                h["m"], h["f"], h["k"], e[0], e[1], e[2]))
        if e is not None and len(e) > 3 and (h["c"], h.get("t", -1)) != tuple(e[3:]):
            raise NeighborsError("the file has {} classes, threshold {}; meta.json says {}, {} (-1: a knn model)".format(
                h["c"], h.get("t", -1), e[3], e[4]))
        c = self.cnew
        if c is not None:
            try:
                c = c(h["m"], h["f"], h["k"])
            except MemoryError:  # no free block of the examples' size: the plain evaluator's arrays are smaller
                c = None
        self.model = Neighbors(h["m"], h["f"], h["k"], h["x"], h["c"], c)
        self.model.threshold = h.get("t", -1)
        return self.model

    def finish(self):
        m = self.model
        if m is None:
            raise NeighborsError("no examples (k, x, f, c, m, then s and i lines): not a neighbours model")
        if m.n_items != m.max_items or m.n_scales != m.n_features:
            raise NeighborsError("the file has {} of {} items and {} of {} scaling lines (truncated file?)".format(
                m.n_items, m.max_items, m.n_scales, m.n_features))
        c = self.cols
        if c is not None:
            for j in range(m.n_features):
                m.src[j] = c[0][m.src[j]]
            m.n_inputs = c[1]
        return m


def load(lines, expect=None, cnew=None):
    """A ``Neighbors`` from model-file ``lines`` (str or bytes), completely checked (``cnew``: as ``Loader``).
    Raises NeighborsError naming the line."""
    ld = Loader(expect, cnew)
    for line in lines:
        ld.feed(line)
    return ld.finish()
