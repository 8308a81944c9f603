"""Reading emlearn's tree CSV into a tree builder, with complete validation: needed only while a model loads.

Split from ``sensorbox.shared.trees`` (the evaluator, resident while a model runs) so the device keeps this code
in RAM only while it parses a file (``sensorbox.device.lazy``). Line format (emlearn
``convert(...).save(format='csv')``)::

    f,<n_features>   c,<n_classes>   lb,<leaf_bits>   l,<class>   r,<root node>   n,<feature>,<threshold>,<left>,<right>

A child >= 0 is a relative offset to a later node; a child < 0 is leaf ``-child-1``. The threshold is truncated to
an int (``int(float(t))``, as the device loader does). Only majority voting (``lb,0``) is supported.

``Loader(builder)`` takes one line at a time (``feed``), so a caller can yield between lines, and checks each line
as it comes in O(1) memory; ``finish()`` checks what needs the whole file (every child, root and leaf reference
exists) and returns the counts. After ``finish`` every walk over the builder's arrays ends inside them (children
point strictly forward), which is what the unchecked viper kernel (``sensorbox.device.analysis.trees``) relies on.
``load(lines, builder)`` does both. Errors are ``trees.TreesError`` naming the line or node.

The builder is an ``emlearn_trees`` model, or a ``trees.Trees`` / ``kernels_emlearn.CTrees``, which is filled through
``Builder``: the builder interface of ``emlearn_trees`` (``setdata(features, classes)``, ``addnode``, ``addroot``,
``addleaf``, as emlearn-micropython's stub declares them) with its checks, kept here so a running model's
evaluator does not hold them in RAM. ``setdata`` comes before the first node, leaf or root (emlearn's own
``load_model`` calls it last; the C code only stores the two counts, so the order does not matter to it).
"""

import array

from sensorbox.shared.trees import MAX_CLASSES, MAX_FEATURES, MAX_NODES, TreesError


def fields(line):
    """(the line as stripped text, its comma-separated fields, or None for a blank line) of a model-file line, str
    or bytes (shared with sensorbox.shared.neighbors' loader)."""
    if isinstance(line, bytes):
        line = line.decode()
    line = line.strip()
    return line, (line.split(",") if line else None)


class Builder:
    """``emlearn_trees``' builder interface (``setdata(features, classes)``, ``addnode(left, right, feature, value)``,
    ``addroot(root)``, ``addleaf(value)``, as in emlearn-micropython's ``stubs/emlearn_trees.py``) over a
    ``trees.Trees`` or a ``kernels_emlearn.CTrees`` (``t``), each call checked against the capacity and against what
    emlearn's C code would silently truncate (int16 thresholds and children, int8 feature and class counts). A
    Trees' arrays are filled here; a CTrees' ``emlearn_trees`` model through its own calls. Also
    ``outputs``/``predict`` of ``t``, so it stands where a whole ``emlearn_trees`` model is expected."""

    def __init__(self, t):
        self.t = t
        self.c = getattr(t, "model", None)  # a CTrees' emlearn_trees model

    def setdata(self, n_features, n_classes):
        if not 0 < n_features <= MAX_FEATURES:
            raise TreesError("n_features {} out of range 1..{}".format(n_features, MAX_FEATURES))
        if not 0 < n_classes <= MAX_CLASSES:
            raise TreesError("n_classes {} out of range 1..{}".format(n_classes, MAX_CLASSES))
        t = self.t
        t.n_features = n_features
        t.n_classes = n_classes
        t._votes = array.array("H", bytes(2 * n_classes))
        if self.c is not None:
            self.c.setdata(n_features, n_classes)
            t.out = array.array("f", bytes(4 * n_classes))

    def addnode(self, left, right, feature, value):
        t = self.t
        i = t.n_nodes
        if i >= t.max_nodes:
            raise TreesError("more than {} nodes (capacity)".format(t.max_nodes))
        if not -32768 <= value <= 32767:
            raise TreesError("node {}: threshold {} is not int16".format(i, value))
        if not 0 <= feature <= MAX_FEATURES:
            raise TreesError("node {}: feature {} out of range".format(i, feature))
        if self.c is not None:
            if not (-32768 <= left <= 32767 and -32768 <= right <= 32767):
                raise TreesError("node {}: child out of range".format(i))
            self.c.addnode(left, right, feature, value)  # relative children, as in the CSV
            t.n_nodes = i + 1
            return
        left = i + left if left >= 0 else left
        right = i + right if right >= 0 else right
        if not (-32768 <= left <= MAX_NODES and -32768 <= right <= MAX_NODES):
            raise TreesError("node {}: child out of range".format(i))
        j = i * 4
        n = t.nodes
        n[j] = feature
        n[j + 1] = value
        n[j + 2] = left
        n[j + 3] = right
        t.n_nodes = i + 1

    def addroot(self, root):
        t = self.t
        if t.n_trees >= t.max_trees:
            raise TreesError("more than {} trees (capacity)".format(t.max_trees))
        if not 0 <= root < MAX_NODES:
            raise TreesError("root {} out of range".format(root))
        if self.c is not None:
            self.c.addroot(root)
        else:
            t.roots[t.n_trees] = root
        t.n_trees += 1

    def addleaf(self, leaf):
        t = self.t
        if t.n_leaves >= t.max_leaves:
            raise TreesError("more than {} leaves (capacity)".format(t.max_leaves))
        if not 0 <= leaf <= 255:
            raise TreesError("leaf class {} out of range".format(leaf))
        if self.c is not None:
            self.c.addleaf(leaf)
        else:
            t.leaves[t.n_leaves] = leaf
        t.n_leaves += 1

    def outputs(self):
        return self.t.outputs()

    def predict(self, x, out):
        self.t.predict(x, out)


class LineReader:
    """A model file read a line at a time: counts lines, skips blank ones, hands each line's fields to
    ``self.line(kind, fields)`` and puts the line number into its errors (``error``: the exception class)."""

    error = TreesError
    lineno = 0

    def feed(self, line):
        """Parse one line (str or bytes). Raises ``error`` naming the line."""
        self.lineno += 1
        line, tok = fields(line)
        if not tok:
            return
        try:
            self.line(tok[0], tok)
        except self.error as e:
            raise self.error("line {}: {}".format(self.lineno, e))
        except (ValueError, OverflowError) as e:  # a broken number, an int16 array refusing a value
            raise self.error("line {}: {} ({})".format(self.lineno, e, line[:40]))


class Loader(LineReader):
    """``cols``: for a model on a part of the features, the position of each of its inputs in the whole vector
    and that vector's length, ``(positions, length)``: its nodes then read the whole vector (numbered there). A
    vector longer than a tree numbers (``MAX_FEATURES``; 6 channels' 169 features) is not: the nodes keep the
    model's own numbering and ``inputs`` holds the positions, for the caller to hand the model its inputs in their
    order (the device's pipeline: ``Model.cols``)."""

    def __init__(self, builder, cols=None):
        # A Trees or CTrees has no builder methods of its own; an emlearn_trees model (or a Builder) has. (Not
        # isinstance: on the device the trees module may have been unloaded and imported again since the evaluator
        # was made, and then its class is another object.)
        self.builder = builder if hasattr(builder, "setdata") else Builder(builder)
        self.n_features = self.n_classes = None
        self.leaf_bits = 0
        self.trees = self.nodes = self.leaves = 0
        self.ready = False
        self.lineno = 0
        self.cols = cols
        self.inputs = None
        if cols is not None and cols[1] > MAX_FEATURES:
            self.inputs = cols[0]
            self.cols = None
        # the furthest reference seen so far, checked against the counts in finish(): (value, where)
        self._far_node = (-1, None)
        self._far_leaf = (-1, None)

    def line(self, kind, tok):
        """One line's fields into the builder (``feed`` calls it)."""
        if kind in ("n", "l", "r"):
            if not self.ready:
                if self.n_features is None or self.n_classes is None:
                    raise TreesError("data before the f and c lines")
                if self.leaf_bits != 0:
                    raise TreesError("leaf_bits {} unsupported: only majority voting (lb,0)".format(self.leaf_bits))
                self.builder.setdata(self.n_features if self.cols is None else self.cols[1], self.n_classes)
                self.ready = True
            if kind == "n":
                if len(tok) != 5:
                    raise TreesError("a node line has 5 fields")
                self._node(int(tok[1]), int(float(tok[2])), int(tok[3]), int(tok[4]))
            elif len(tok) != 2:
                raise TreesError("a leaf/root line has 2 fields")
            elif kind == "l":
                c = int(tok[1])
                if not 0 <= c < self.n_classes:
                    raise TreesError("leaf {}: class {} >= n_classes {}".format(self.leaves, c, self.n_classes))
                self.builder.addleaf(c)
                self.leaves += 1
            else:
                r = int(tok[1])
                if r > self._far_node[0]:
                    self._far_node = (r, "tree {}: root".format(self.trees))
                self.builder.addroot(r)
                self.trees += 1
        elif kind in ("f", "c", "lb"):
            if len(tok) != 2:
                raise TreesError("a header line has 2 fields")
            if self.ready:
                raise TreesError("header line after the data")
            if kind == "f":
                self.n_features = int(tok[1])
            elif kind == "c":
                self.n_classes = int(tok[1])
            else:
                self.leaf_bits = int(tok[1])
        # other kinds are ignored, as emlearn's loader does

    def _node(self, feature, threshold, left, right):
        i = self.nodes
        if not 0 <= feature < self.n_features:
            raise TreesError("node {}: feature {} >= n_features {}".format(i, feature, self.n_features))
        for c in (left, right):
            if c >= 0:
                if c == 0:
                    raise TreesError("node {}: child {} is not a later node".format(i, i))
                if i + c > self._far_node[0]:
                    self._far_node = (i + c, "node {}: child".format(i))
            elif -c - 1 > self._far_leaf[0]:
                self._far_leaf = (-c - 1, "node {}: leaf".format(i))
        self.builder.addnode(left, right, feature if self.cols is None else self.cols[0][feature], threshold)
        self.nodes += 1

    def finish(self, expect=None):
        """Check the references that needed the whole file; return (n_features, n_classes, n_trees, n_nodes,
        n_leaves) as counted in it. ``expect``: those counts as announced elsewhere (a model's meta.json), checked
        first, since a truncated file is better explained by them than by a dangling reference. Raises TreesError."""
        if not self.ready:
            raise TreesError("no tree data (f, c, then l/r/n lines): not an emlearn tree model")
        got = (self.n_features, self.n_classes, self.trees, self.nodes, self.leaves)
        if expect is not None:
            what = ("features", "classes", "trees", "nodes", "leaves")
            for i in range(5):
                if got[i] != expect[i]:
                    raise TreesError("the file has {} {}, meta.json says {}{}".format(
                        got[i], what[i], expect[i], " (truncated file?)" if got[i] < expect[i] else ""))
        if self.trees == 0 or self.nodes == 0 or self.leaves == 0:
            raise TreesError("empty model: {} trees, {} nodes, {} leaves".format(self.trees, self.nodes, self.leaves))
        far, where = self._far_node
        if far >= self.nodes:
            raise TreesError("{} {} does not exist ({} nodes)".format(where, far, self.nodes))
        far, where = self._far_leaf
        if far >= self.leaves:
            raise TreesError("{} {} does not exist ({} leaves)".format(where, far, self.leaves))
        return got


def load(lines, builder):
    """Parse emlearn CSV ``lines`` (any iterable of str or bytes lines, e.g. an open file) into ``builder``
    (a ``trees.Trees``, a ``Builder`` or an ``emlearn_trees`` model) and validate it completely. Returns
    (n_features, n_classes, n_trees, n_nodes, n_leaves) as counted in the file. Raises TreesError naming the line
    or node."""
    ld = Loader(builder)
    for line in lines:
        ld.feed(line)
    return ld.finish()
