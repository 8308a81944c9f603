"""The names of a stored resource's columns (``columns_of``): an export's header and ``GET /api/resources``.

A module of its own, loaded for the call (``lazy``): an export loaded all of ``figures`` for it, ~3 KB more at
its peak. Not in the resident ``core.py``: the rollups' names are needed only when something is read out.
"""

from sensorbox.shared import features


def columns_of(r):
    """The names of resource ``r``'s columns."""
    if r.cols is not None:
        return r.cols
    if r.period:  # a rollup's: the sound (codes 7, 8) or the class rollups' (9, 10: seconds per class; rollup.py)
        if r.code < 9:
            return ("n", "leq", "lmin", "lmax", "l10", "l50", "l90")
        return ("windows", "changes", "confidence", "other", "unknown") + tuple(
            "c" + str(i) for i in range(r.ncols - 5))
    for ch in (3, 6):
        names = features.names(ch)
        if len(names) == r.ncols:
            return names
    return tuple("f{}".format(i) for i in range(r.ncols))
