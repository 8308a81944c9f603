"""Viper kernel for the simulated microphone (``sim_mic.py`` has the plain version, with the same results).

Kept in a module of its own, like ``pcm.py``, so that a build without the viper emitter falls back to the
plain kernel instead of failing to import the simulator. It is simulator code: 16,000 samples a second through
the plain loop cost ~0.6 % of a core here, through this one ~0.01 %.
"""

import micropython


@micropython.viper
def tone_noise(tone, size: int, pos: int, out, n: int, half: int, rng: int) -> int:
    """out[i] = tone[(pos + i) % size] plus uniform noise in [-half, half] from the LCG state ``rng``, clipped to
    int16, for i < n; returns the new LCG state. ``tone`` and ``out`` are int16 arrays. Allocates nothing."""
    pt = ptr16(tone)
    po = ptr16(out)
    # 1103515245 and 2**31 - 1 made at run time: mpy-cross keeps a literal (or a folded constant) beyond 2**30
    # as an object, which viper cannot mix with its ints
    mul = 0x41C6
    mul = (mul << 16) | 0x4E6D
    mask = 1
    mask = (mask << 31) - 1
    span = 2 * half + 1
    i = 0
    j = pos
    while i < n:
        v = pt[j]
        if v >= 32768:  # ptr16 loads are unsigned
            v -= 65536
        if half:
            rng = (rng * mul + 12345) & mask
            v += (rng >> 4) % span - half
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        po[i] = v
        i += 1
        j += 1
        if j == size:
            j = 0
    return rng
