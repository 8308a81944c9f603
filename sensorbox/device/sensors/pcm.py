"""Viper kernel for the I2S microphone: 32-bit I2S slots to int16 samples (``i2s_mic.py`` has the plain version).

Kept in a module of its own so that a build without the viper emitter falls back to the plain kernel
(``except (ImportError, SyntaxError)``) instead of failing to import the driver.
"""

import micropython


@micropython.viper
def s32_to_s16(src, stride: int, off: int, dst, n: int):
    """dst[i] = bits 31..16 of the little-endian 32-bit word src[off + i * stride], for i < n. A 24-bit sample
    left-justified in a 32-bit slot (INMP441, ICS-43434) thus keeps its top 16 bits. Allocates nothing."""
    ps = ptr32(src)
    pd = ptr16(dst)
    i = 0
    j = off
    while i < n:
        pd[i] = ps[j] >> 16  # on 64-bit hosts the load is zero-extended: the low 16 bits stored are the same
        i += 1
        j += stride
