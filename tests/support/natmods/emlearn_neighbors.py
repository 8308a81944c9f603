"""Test double of emlearn-micropython's native ``emlearn_neighbors`` (tests/support/emlearn_api.py records its API;
tests/host/test_emlearn_doubles.py checks this file against it). For CI, where the real module cannot be installed.

Behaviour as in ``src/emlearn_neighbors/neighbors.c`` over emlearn's ``eml_neighbors.h``: ``new(max_items,
features, k_neighbors)`` reserves the examples; ``additem(values, label)`` copies an int16 array of exactly
``features`` values (ValueError for another length or beyond the capacity) and returns its index;
``predict(inputs)`` computes floor(sqrt(sum of squared differences)) to every example, sorts them by distance
(the C code's quicksort is not stable: here equal distances come out in descending index order, one of the orders
it can give, so that a caller relying on any order is caught) and returns the class with the most votes among the
first k (the lowest on a tie; ValueError for a label >= 10 among them or inputs of another length);
``getresult(idx)`` is ``(item, distance, label)`` of the idx-th nearest; ``getitem(item, outputs)`` copies an
example out. Errors as the C code raises them.
"""

import array

from _double import require

_MAX_CLASSES = 10  # EML_NEIGHBORS_MAX_CLASSES


def _isqrt(x):
    r = 0
    b = 1 << 30
    while b > x:
        b >>= 2
    while b:
        if x >= r + b:
            x -= r + b
            r = (r >> 1) + b
        else:
            r >>= 1
        b >>= 2
    return r


class _Model:
    def __init__(self, max_items, n_features, k):
        self._max = max_items
        self._nf = n_features
        self._k_neighbors = k
        self._n = 0
        self._data = array.array("h", bytes(2 * max_items * n_features))
        self._item_labels = array.array("h", bytes(2 * max_items))
        self._order = []  # (distance, -index) after predict

    def additem(self, values, label):
        require(values, "h")
        if len(values) != self._nf or self._n >= self._max:
            raise ValueError("additem failed")
        i = self._n
        for j in range(self._nf):
            self._data[i * self._nf + j] = values[j]
        self._item_labels[i] = label
        self._n = i + 1
        return i

    def getitem(self, item, outputs):
        if item < 0 or item >= self._n:
            raise ValueError("Index out of bounds")
        require(outputs, "h")
        if len(outputs) != self._nf:
            raise ValueError("Buffer is wrong size")
        for j in range(self._nf):
            outputs[j] = self._data[item * self._nf + j]

    def predict(self, inputs):
        require(inputs, "h")
        if len(inputs) != self._nf:
            raise ValueError("EmlError")
        nf = self._nf
        order = []
        for i in range(self._n):
            s = 0
            for j in range(nf):
                d = inputs[j] - self._data[i * nf + j]
                s += d * d
            order.append((_isqrt(s), -i))
        order.sort()
        self._order = order
        votes = [0] * _MAX_CLASSES
        for d, i in order[:self._k_neighbors]:
            lab = self._item_labels[-i]
            if lab < 0 or lab >= _MAX_CLASSES:
                raise ValueError("EmlError")
            votes[lab] += 1
        best = -1
        most = 0
        for c in range(_MAX_CLASSES):
            if votes[c] > most:
                most = votes[c]
                best = c
        return best

    def getresult(self, idx):
        if idx < 0 or idx >= self._n:
            raise ValueError("Index out of bounds")
        d, i = self._order[idx]
        return (-i, d, self._item_labels[-i])


def new(max_items, features, k_neighbors):
    return _Model(max_items, features, k_neighbors)
