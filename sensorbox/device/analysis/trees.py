"""Fast tree-ensemble evaluation on the device.

``new(max_trees, max_nodes, max_leaves)`` returns the fastest evaluator available, both filled by
``sensorbox.shared.trees_csv`` and both with ``classify(x) -> class`` and ``votes()``:

- ``emlearn_trees`` (emlearn's C code, a native module real devices install with mip) when importable,
  behind ``kernels_emlearn.CTrees``;
- else ``Trees`` over the same compact arrays as the plain-Python version, walked by the viper kernel ``vote``.

Both give the same votes as emlearn's C ``eml_trees_predict``: hard majority vote, first class with the most votes.
``smooth`` is the pipeline's step after either: this window's votes (counts, or emlearn_trees' float outputs
votes / n_trees, decoded exactly) into the smoothing history, and the class with the most votes over it.
"""

import micropython
import sys

from sensorbox.shared import trees


@micropython.viper
def vote(nodes, roots, n_trees: int, leaves, x, votes, n_classes: int) -> int:
    """Viper version of ``trees.vote`` over the same arrays. ptr16 reads int16 as unsigned: XOR 0x8000 maps signed
    order onto unsigned order, and a child >= 0x8000 is a (negative) leaf code. ``Trees.check`` guarantees every
    index is in bounds and every walk moves forward, so no bounds checks are needed here."""
    nd = ptr16(nodes)
    rt = ptr16(roots)
    lv = ptr8(leaves)
    xp = ptr16(x)
    vp = ptr16(votes)
    c = 0
    while c < n_classes:
        vp[c] = 0
        c += 1
    t = 0
    while t < n_trees:
        i = int(rt[t])
        while i < 0x8000:
            j = i << 2
            if (int(xp[int(nd[j])]) ^ 0x8000) < (int(nd[j + 1]) ^ 0x8000):
                i = int(nd[j + 2])
            else:
                i = int(nd[j + 3])
        k = int(lv[0xFFFF - i])
        vp[k] = int(vp[k]) + 1
        t += 1
    best = -1
    most = 0
    c = 0
    while c < n_classes:
        if int(vp[c]) > most:
            most = int(vp[c])
            best = c
        c += 1
    return best


@micropython.viper
def smooth(out, flt: int, n_trees: int, hist, base: int, count: int, n_classes: int) -> int:
    """Copy one window's votes into ``hist`` (uint16, ``count`` rows of ``n_classes``) at ``base`` and return the
    class with the most votes summed over the first ``count`` rows (the first such class; -1 if none has any) and
    that sum, as ``sum << 8 | (class + 1)``. ``out``: the votes, uint16 counts (``flt`` 0) or, ``flt`` 1,
    emlearn_trees' float32 outputs votes / n_trees, decoded from their bits: round(p * n_trees) from the top 16 bits
    of the mantissa, exact while votes < 16384 (tests/device/test_emlearn.py tries every count up to 255 trees).
    Products stay below 2**31 for n_trees < 32768, as on a 32-bit ESP32."""
    ph = ptr16(hist)
    pv = ptr16(out)
    pf = ptr32(out)
    c = 0
    while c < n_classes:
        if flt:
            b = int(pf[c])
            e = (b >> 23) & 0xFF
            v = 0
            if e:
                sh = 142 - e  # p = m * 2**(e - 150), with m's top 16 bits: (m >> 8) * 2**(e - 142)
                if sh > 0 and sh < 31:
                    v = ((((b & 0x7FFFFF) | 0x800000) >> 8) * n_trees + (1 << (sh - 1))) >> sh
        else:
            v = int(pv[c])
        ph[base + c] = v
        c += 1
    best = -1
    most = 0
    c = 0
    while c < n_classes:
        s = 0
        k = c
        end = count * n_classes
        while k < end:
            s += int(ph[k])
            k += n_classes
        if s > most:
            most = s
            best = c
        c += 1
    return (most << 8) | (best + 1)


def new(max_trees, max_nodes, max_leaves):
    try:  # (modules named by strings: their names interned where emlearn_trees is installed, not at every boot)
        em = __import__("emlearn_trees")
    except ImportError:
        return trees.Trees(max_trees, max_nodes, max_leaves, vote)
    kc = "sensorbox.shared.kernels_emlearn"
    __import__(kc)
    return sys.modules[kc].CTrees(em.new(max_trees, max_nodes, max_leaves), max_trees, max_nodes, max_leaves,
                                  smooth)
