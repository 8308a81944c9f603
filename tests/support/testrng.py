"""The tests' pseudo-random numbers, in one place: a 31-bit linear congruential generator (glibc's constants)
that CPython, the MicroPython unix port and MicroPython WebAssembly compute alike (small-int arithmetic on every
port), so a seed gives the same data everywhere and a failure replays from its seed.

Who sees it: device tests and shared tests on MicroPython (tests/support is on their path, tests/conftest.py),
shared tests on CPython (tests/conftest.py appends tests/support to sys.path) and on WebAssembly
(tests/wasm_runner.mjs copies this file beside the test), the proof suite's MicroPython scripts in tests/host, and
the benchmarks (bench/, through tests/support/forestgen.py).

    rng = Rng(7)          # rng.next(): the raw state; rng.below(n): 0..n-1 from the bits above ``shift``
    int16s(3, 256, -16384, 16384)       # array('h') of 256 values in [lo, hi]
"""

import array


class Rng:
    def __init__(self, seed=1, shift=8):
        self.s = seed
        self.shift = shift

    def next(self):
        """The next raw state (0 .. 2**31 - 1)."""
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return self.s

    def below(self, n):
        """A value in 0 .. n - 1 (the state's bits from ``shift`` up, modulo n)."""
        return (self.next() >> self.shift) % n


def spread(seed):
    """A small seed (1, 2, ...) spread over 32 bits, never 0: the proof scripts' starting state."""
    return seed * 2654435761 % 4294967296 or 1


def int16s(seed, n, lo, hi):
    """``n`` values in [lo, hi] as array('h')."""
    r = Rng(seed)
    out = array.array("h", bytes(2 * n))
    for i in range(n):
        out[i] = lo + r.below(hi - lo + 1)
    return out


def uniform(seed, half, out):
    """Fill ``out`` (array('h')) with white noise, uniform in [-half, half]; returns it."""
    r = Rng(seed, 4)
    for i in range(len(out)):
        out[i] = r.below(2 * half + 1) - half
    return out


def rand_bytes(n, seed):
    """``n`` pseudo-random bytes (bits 16-23 of each state)."""
    r = Rng(seed, 16)
    out = bytearray(n)
    for i in range(n):
        out[i] = r.below(256)
    return out
