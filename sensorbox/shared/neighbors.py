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
whose C code sorts with an unstable quicksort: given its model (``Neighbors(..., c=model)``, what a device with the
module installed does) ``nearest`` lets it compute and sort the distances, re-reads ``getresult`` and breaks equal
distances by example index, as here, so the answers are the same (a few result tuples allocated per call). emlearn's
C module allows at most 10 classes (a label beyond fails its predict): a device uses it only up to 10, and only
when the heap has a free block of the examples' size for it (``neighbors_csv``; else the plain evaluator, whose
examples are in arrays of ``CHUNK_BYTES``).
"""

import array

from sensorbox.shared import kernels

LIMIT = 1448  # 127 * (2 * 1448)**2 < 2**30
MAX_FEATURES = 127
MAX_ITEMS = 32767  # item indices are int16 in emlearn
MAX_CLASSES = 255
#: The plain evaluator keeps its examples in arrays of at most this many bytes: a device's heap, fragmented after
#: a while, may have no free block of a model's size (~10 KB) when it has many times that free in smaller ones
CHUNK_BYTES = 1024


class NeighborsError(ValueError):
    pass


class Neighbors:
    """Stored examples (capacity fixed at creation, arrays allocated once) and the evaluator."""

    def __init__(self, max_items, n_features, k, n_inputs, n_classes, c=None):
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
        self.c = c  # emlearn_neighbors' model, which then holds the examples (else self.items)
        self.per = p = max(1, CHUNK_BYTES // (2 * n_features))  # examples per array of self.items
        self.items = None if c is not None else [array.array("h", bytes(2 * n_features * min(p, max_items - i)))
                                                 for i in range(0, max_items, p)]
        self.labels = bytearray(max_items)
        self.src = array.array("h", bytes(2 * n_features))
        self.off = array.array("h", bytes(2 * n_features))
        self.mul = array.array("h", bytes(2 * n_features))
        self.shift = bytearray(n_features)
        self.query = array.array("h", bytes(2 * n_features))
        self.near = array.array("h", bytes(2 * k))  # indices of the k nearest, nearest first
        self.dist = array.array("h", bytes(2 * k))  # their distances
        self.counts = array.array("H", bytes(2 * n_classes))  # the last classify's votes (``votes()``)
        self.found = 0
        self.last = -1  # the last ``score``

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
        for j in range(self.n_features):
            v = values[j]
            if v > LIMIT or v < -LIMIT:
                raise NeighborsError("item {}: value {} beyond +-{}".format(i, v, LIMIT))
        if self.c is None:
            a = self.items[i // self.per]
            base = i % self.per * self.n_features
            for j in range(self.n_features):
                a[base + j] = values[j]
        else:
            self.c.additem(values, label)  # (values: an int16 array of n_features, as the C code requires)
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
        self.found = 0
        c = self.c
        if c is not None:  # emlearn computes and sorts; equal distances come in any order: by index here
            c.predict(q)
            n = self.n_items
            last = -1
            j = 0
            while j < n:
                r = c.getresult(j)  # (item, distance, label)
                if j >= self.k and r[1] > last:
                    break
                last = r[1]
                self._keep(r[0], last)
                j += 1
            return self.found
        nf = self.n_features
        per = self.per
        for i in range(self.n_items):
            a = self.items[i // per]
            base = i % per * nf
            s = 0
            for j in range(nf):
                d = q[j] - a[base + j]
                s += d * d
            self._keep(i, kernels.isqrt(s))
        return self.found

    def _keep(self, i, d):
        # example i at distance d into the k nearest so far, if it is one: ordered by (distance, index)
        near = self.near
        dist = self.dist
        k = self.k
        if self.found < k:
            p = self.found
            self.found = p + 1
        elif d < dist[k - 1] or (d == dist[k - 1] and i < near[k - 1]):
            p = k - 1
        else:
            return
        while p > 0 and (dist[p - 1] > d or (dist[p - 1] == d and near[p - 1] > i)):
            dist[p] = dist[p - 1]
            near[p] = near[p - 1]
            p -= 1
        dist[p] = d
        near[p] = i

    def classify(self, x):
        """The class of the feature vector ``x`` by majority vote of its k nearest examples (ties: the lowest
        class); -1 when no example is stored. The vote counts stay in ``votes()``."""
        n = self.nearest(self.scale(x))
        v = self.counts
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

    def votes(self):
        """The last ``classify``'s vote counts per class (uint16; as ``trees.Trees.votes``: the device's pipeline
        smooths and decides a knn model's votes as it does the trees')."""
        return self.counts

    def anomaly(self, x):
        """An anomaly model's answer for ``x``: (1 when its score is above ``threshold``, else 0; the score in
        permille of the threshold, 1000 at it, at most 32767), per window, on the device as in
        ``sensorbox evaluate``."""
        s = self.score(x)
        h = self.threshold
        if h <= 0:
            return (1 if s > h else 0), (32767 if s > 0 else 0)
        return (1 if s > h else 0), min(s * 1000 // h, 32767)  # (s < 2**15: no big int)

    def score(self, x):
        """Anomaly score of ``x``: the distance to its k-th nearest example (the farthest found when fewer are
        stored; -1 when none is), kept as ``self.last``. Compare with ``self.threshold``: above it is an anomaly."""
        n = self.nearest(self.scale(x))
        self.last = s = self.dist[n - 1] if n else -1
        return s
