"""Test double of emlearn-micropython's native ``emlearn_iir`` (tests/support/emlearn_api.py records its API;
tests/host/test_emlearn_doubles.py checks this file against it). For CI, where the real module cannot be installed.

Behaviour as in ``src/emlearn_iir/iir_filter.c`` and emlearn's ``eml_iir.h``: ``new(coefficients)`` takes a float
array of 6 values per second-order section in scipy.signal.sosfilt's order (b0, b1, b2, a0, a1, a2; a0 is not
used, as in the C code), ValueError for another typecode, a length that is not a multiple of 6, or none;
``run(values)`` filters the whole float array in place, the state carried from call to call.

The C code filters in float32. This double computes the same cascade in sensorbox's Q28 fixed point
(``kernels_viper.iir_q``) on the values rounded to int16 (what sensorbox gives it), so that ``run`` allocates
nothing once it has seen its arrays, as the C code: results close to the C code's, not identical. Coefficients
outside [-2, 2) raise NotImplementedError here.
"""

import array

from _double import require
from sensorbox.shared.kernels_emlearn import from_f32, to_f32
from sensorbox.shared.kernels_viper import iir_q


class _IIR:
    def __init__(self, coefficients):
        q = []
        for s in range(len(coefficients) // 6):
            for i in (0, 1, 2, 4, 5):
                c = coefficients[6 * s + i]
                if not -2.0 <= c < 2.0:
                    raise NotImplementedError("the double takes coefficients in [-2, 2), got {}".format(c))
                v = c * 268435456
                q.append(int(v + 0.5) if v >= 0 else -int(-v + 0.5))
        self._coefs = array.array("h", bytes(4 * len(q)))  # as kernels.iir_q_pack: (c >> 14, c & 0x3FFF)
        for i in range(len(q)):
            self._coefs[2 * i] = q[i] >> 14
            self._coefs[2 * i + 1] = q[i] & 0x3FFF
        self._nsec = len(q) // 5
        self._state = array.array("h", bytes(16 * self._nsec))
        self._x = array.array("h")
        self._seen = []

    def run(self, values):
        require(values, "f", self._seen)
        n = len(values)
        if len(self._x) < n:
            self._x = array.array("h", bytes(2 * n))
        x = self._x
        from_f32(values, x, 0, n, 0)
        iir_q(x, x, n, self._coefs, self._state, self._nsec)
        to_f32(x, 0, values, n)


def new(coefficients):
    require(coefficients, "f")
    n = len(coefficients)
    if n % 6:
        raise ValueError("Filter coefficients must be multiple of 6")
    if n == 0:
        raise ValueError("EmlError")
    return _IIR(coefficients)
