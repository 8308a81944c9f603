"""Test double of emlearn-micropython's native ``emlearn_fft`` (tests/support/emlearn_api.py records its API;
tests/host/test_emlearn_doubles.py checks this file against it). For CI, where the real module cannot be installed.

Behaviour as in ``src/emlearn_fft/fft.c`` and its Python half: ``FFT(length)`` holds length // 2 sine and cosine
coefficients, set by ``fill(sin, cos)`` (float arrays of exactly that length; ValueError otherwise) or by the
module's ``fill(fft, n)``; ``run(real, imag)`` (ValueError before fill, or for arrays other than float of exactly
``length``) is the in-place forward radix-2 FFT, e^-i, unscaled, in the same butterfly order. Python floats
(double precision, stored as float32): close to the C code's float32, not bit-identical; it allocates.
"""

import array
import math

from _double import require


class FFT:
    def __init__(self, length):
        self._n_half = length // 2
        self._sin = array.array("f", bytes(4 * self._n_half))
        self._cos = array.array("f", bytes(4 * self._n_half))
        self._filled = False

    def fill(self, sin, cos):
        for a in (sin, cos):
            require(a, "f")
            if len(a) != self._n_half:
                raise ValueError("wrong array length")
        for i in range(self._n_half):
            self._sin[i] = sin[i]
            self._cos[i] = cos[i]
        self._filled = True

    def run(self, real, imag):
        if not self._filled:
            raise ValueError("fill() not called first")
        n = 2 * self._n_half
        for a in (real, imag):
            require(a, "f")
            if len(a) != n:
                raise ValueError("wrong array length")
        levels = 0
        while (1 << levels) < n:
            levels += 1
        if (1 << levels) != n:
            raise RuntimeError("eml_fft_forward error")
        for i in range(n):
            j = 0
            x = i
            for _ in range(levels):
                j = (j << 1) | (x & 1)
                x >>= 1
            if j > i:
                real[i], real[j] = real[j], real[i]
                imag[i], imag[j] = imag[j], imag[i]
        size = 2
        while size <= n:
            half = size // 2
            step = n // size
            for i in range(0, n, size):
                k = 0
                for j in range(i, i + half):
                    m = j + half
                    tre = real[m] * self._cos[k] + imag[m] * self._sin[k]
                    tim = -real[m] * self._sin[k] + imag[m] * self._cos[k]
                    real[m] = real[j] - tre
                    imag[m] = imag[j] - tim
                    real[j] += tre
                    imag[j] += tim
                    k += step
            size *= 2


def fill(fft, n):
    # as the module's Python half: the coefficients for an n-point transform
    w = 2.0 * math.pi / n
    fft.fill(array.array("f", [math.sin(w * i) for i in range(n // 2)]),
             array.array("f", [math.cos(w * i) for i in range(n // 2)]))
