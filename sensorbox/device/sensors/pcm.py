"""Viper kernels of the board drivers: the I2S microphone's 32-bit I2S slots to int16 samples (``i2s_mic.py`` has
the plain version), the LSM6DS3's FIFO data sets of gyroscope and accelerometer to frames (``lsm6ds3.py`` has it).

Kept in a module of its own so that a build without the viper emitter falls back to the plain kernels
(``except (ImportError, SyntaxError)``) instead of failing to import a driver.
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


@micropython.viper
def imu_frames(src, dst, doff: int, n: int):
    """The LSM6DS3's FIFO data sets with the gyroscope on (``n`` of 6 words: gx gy gz ax ay az, the datasheet's
    pattern order) into frames ax ay az gx gy gz at ``dst[doff:]``; the gyroscope's counts of 70 mdps (its
    sensitivity at 2000 dps) as 16.4 per dps: x 37618 / 32768 (1.148010; 16.4 x 0.070 = 1.148), rounded, clamped
    to int16. ``lsm6ds3.imu_frames_py`` is the plain version. Allocates nothing."""
    ps = ptr16(src)
    pd = ptr16(dst)
    i = 0
    o = doff
    e = n * 6
    while i < e:
        pd[o] = ps[i + 3]
        pd[o + 1] = ps[i + 4]
        pd[o + 2] = ps[i + 5]
        k = 0
        while k < 3:
            v = int(ps[i + k])
            if v > 32767:
                v -= 65536  # (the load is zero-extended)
            v += (v * 4850 + 16384) >> 15  # v * 37618 / 32768, no product past 2**30
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            pd[o + 3 + k] = v
            k += 1
        i += 6
        o += 6
