"""Fast tree-ensemble evaluation on the device.

``new(max_trees, max_nodes, max_leaves)`` returns the fastest evaluator available, all with the builder interface
of ``sensorbox.shared.trees.Trees`` (``load`` fills it) plus ``classify(x) -> class`` and ``votes()``:

- ``emlearn_trees`` (emlearn's C code, a native module real devices install with mip) when importable,
  behind ``trees_c.CTrees``;
- else ``Trees`` over the same compact arrays as the plain-Python version, walked by the viper kernel ``vote``.

Both give the same votes as emlearn's C ``eml_trees_predict``: hard majority vote, first class with the most votes.
"""

import micropython

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


def new(max_trees, max_nodes, max_leaves):
    try:
        import emlearn_trees
    except ImportError:
        return trees.Trees(max_trees, max_nodes, max_leaves, vote)
    from sensorbox.device.trees_c import CTrees  # pragma: no cover - needs the native module

    return CTrees(emlearn_trees.new(max_trees, max_nodes, max_leaves))
