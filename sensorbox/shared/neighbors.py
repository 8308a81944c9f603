"""k-nearest neighbours over int16 feature vectors: a classifier (majority vote of the k nearest stored examples) and
an anomaly score (distance to the k-th nearest stored normal example), identical on the device, the host and in the
browser. Integer arithmetic only: no float, and no int beyond 2**30 (a heap object on a 32-bit board).

Model file (``model.csv`` of a model whose meta.json says ``"kind": "knn"`` or ``"anomaly"``), one record a line::

    k,<k>                neighbours that vote (knn) or whose farthest gives the score (anomaly)
    x,<inputs>           length of the feature vector given to the model (the extractor's, features.names(ch))
    f,<features>         values per stored example (the inputs it uses)
    c,<classes>          classes (anomaly: 1, "normal")
    m,<items>            stored examples
    t,<threshold>        anomaly only: a score above it is an anomaly
    s,<input>,<offset>,<mul>,<shift>     one per used input, in order: q = clamp(((x[input] - offset) * mul) >> shift)
    i,<label>,<q1>,...,<qf>              one per stored example, already scaled

Header lines come first; ``sensorbox.shared.neighbors_csv`` reads and checks the file (loaded only while a
model loads, as ``trees_csv`` for trees). Scaling maps each used feature to about 128 units per standard deviation of the training
data and clamps to +-``LIMIT``, so that with at most ``MAX_FEATURES`` values a squared distance stays below 2**30
(and below emlearn's int32). ``mul`` < 2**14 and |x - offset| < 2**16, so the product stays below 2**30 too.

Distance: floor(sqrt(sum of squared differences)), as emlearn's ``eml_distance_euclidean_int16``. Neighbours are
ordered by (distance, example index); the first k vote; a tie in votes goes to the lowest class (emlearn's rule).
The item lines map one to one onto ``emlearn_neighbors`` (``new(items, features, k)``, ``additem(values, label)``),
whose C code sorts with an unstable quicksort: a device using it re-reads ``getresult`` and breaks equal distances
by example index, as here, to give the same answer. emlearn's C module allows at most 10 classes.
"""

import array

from sensorbox.shared import kernels

LIMIT = 1448  # 127 * (2 * 1448)**2 < 2**30
MAX_FEATURES = 127
MAX_ITEMS = 32767  # item indices are int16 in emlearn
MAX_CLASSES = 255


class NeighborsError(ValueError):
    pass


class Neighbors:
    """Stored examples (capacity fixed at creation, arrays allocated once) and the evaluator."""

    def __init__(self, max_items, n_features, k, n_inputs, n_classes):
        if not (0 < max_items <= MAX_ITEMS and 0 < n_features <= MAX_FEATURES and 0 < k <= max_items
                and 0 < n_inputs and 0 < n_classes <= MAX_CLASSES):
            raise NeighborsError("capacity out of range: items {}, features {}, k {}, inputs {}, classes {}".format(
                max_items, n_features, k, n_inputs, n_classes))
        self.max_items = max_items
        self.n_features = n_features
        self.n_inputs = n_inputs
        self.n_classes = n_classes
        self.k = k
        self.n_items = 0
        self.n_scales = 0
        self.threshold = -1
        self.items = array.array("h", bytes(2 * max_items * n_features))
        self.labels = bytearray(max_items)
        self.src = array.array("h", bytes(2 * n_features))
        self.off = array.array("h", bytes(2 * n_features))
        self.mul = array.array("h", bytes(2 * n_features))
        self.shift = bytearray(n_features)
        self.query = array.array("h", bytes(2 * n_features))
        self.near = array.array("h", bytes(2 * k))  # indices of the k nearest, nearest first
        self.dist = array.array("h", bytes(2 * k))  # their distances
        self.votes = array.array("H", bytes(2 * n_classes))
        self.found = 0

    def setscale(self, src, off, mul, shift):
        """Append the scaling of the next used input (an ``s`` line)."""
        j = self.n_scales
        if j >= self.n_features:
            raise NeighborsError("more than {} scaling lines".format(self.n_features))
        if not (0 <= src < self.n_inputs and -32768 <= off <= 32767 and 0 <= mul < 16384 and 0 <= shift <= 30):
            raise NeighborsError("scaling {}: input {}, offset {}, mul {}, shift {} out of range".format(
                j, src, off, mul, shift))
        self.src[j] = src
        self.off[j] = off
        self.mul[j] = mul
        self.shift[j] = shift
        self.n_scales = j + 1

    def additem(self, values, label):
        """Store an example: ``values`` (scaled, ``n_features`` of them), ``label`` its class (emlearn's call)."""
        i = self.n_items
        if i >= self.max_items:
            raise NeighborsError("more than {} items (capacity)".format(self.max_items))
        if not 0 <= label < self.n_classes:
            raise NeighborsError("item {}: class {} >= classes {}".format(i, label, self.n_classes))
        if len(values) != self.n_features:
            raise NeighborsError("item {}: {} values, the model has {} features".format(i, len(values),
                                                                                        self.n_features))
        base = i * self.n_features
        for j in range(self.n_features):
            v = values[j]
            if v > LIMIT or v < -LIMIT:
                raise NeighborsError("item {}: value {} beyond +-{}".format(i, v, LIMIT))
            self.items[base + j] = v
        self.labels[i] = label
        self.n_items = i + 1
        return i

    def scale(self, x):
        """Scale the feature vector ``x`` (int16, ``n_inputs`` long) into ``self.query`` and return it."""
        if len(x) < self.n_inputs:
            raise NeighborsError("{} features given, model needs {}".format(len(x), self.n_inputs))
        q = self.query
        for j in range(self.n_features):
            v = ((x[self.src[j]] - self.off[j]) * self.mul[j]) >> self.shift[j]
            q[j] = LIMIT if v > LIMIT else (-LIMIT if v < -LIMIT else v)
        return q

    def nearest(self, q):
        """The k nearest stored examples to the scaled ``q``: their indices in ``self.near`` and distances in
        ``self.dist``, ordered by (distance, index). Returns how many were found (k, or fewer stored)."""
        nf = self.n_features
        items = self.items
        near = self.near
        dist = self.dist
        k = self.k
        found = 0
        base = 0
        for i in range(self.n_items):
            s = 0
            for j in range(nf):
                d = q[j] - items[base + j]
                s += d * d
            base += nf
            d = kernels.isqrt(s)
            if found < k:
                p = found
                found += 1
            elif d < dist[k - 1]:
                p = k - 1
            else:
                continue
            # insertion: an earlier example with an equal distance stays ahead (strict >)
            while p > 0 and dist[p - 1] > d:
                dist[p] = dist[p - 1]
                near[p] = near[p - 1]
                p -= 1
            dist[p] = d
            near[p] = i
        self.found = found
        return found

    def classify(self, x):
        """The class of the feature vector ``x`` by majority vote of its k nearest examples (ties: the lowest
        class); -1 when no example is stored. The vote counts stay in ``self.votes``."""
        n = self.nearest(self.scale(x))
        v = self.votes
        for c in range(self.n_classes):
            v[c] = 0
        for j in range(n):
            v[self.labels[self.near[j]]] += 1
        best = -1
        most = 0
        for c in range(self.n_classes):
            if v[c] > most:
                most = v[c]
                best = c
        return best

    def score(self, x):
        """Anomaly score of ``x``: the distance to its k-th nearest example (the farthest found when fewer are
        stored; -1 when none is). Compare with ``self.threshold``: above it is an anomaly."""
        n = self.nearest(self.scale(x))
        return self.dist[n - 1] if n else -1
