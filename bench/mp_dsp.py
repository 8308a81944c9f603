# DSP benchmarks on the MicroPython unix port (run by bench/bench_dsp.py). Prints "name value baseline unit":
# viper kernels against the plain-Python version of the same algorithm over the same arrays, in this run.
import array
import gc
import time

from sensorbox.shared import kernels_viper as V
from sensorbox.shared import features as F
from sensorbox.shared import kernels as K
from sensorbox.shared import kernels_py as P
from sensorbox.shared.dsp_setup import A_WEIGHTING


def _data(seed, n, lo, hi):
    out = array.array("h", bytes(2 * n))
    for i in range(n):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = lo + (seed >> 8) % (hi - lo + 1)
    return out


def _time(fn, reps):
    t0 = time.ticks_us()
    for _ in range(reps):
        fn()
    return time.ticks_diff(time.ticks_us(), t0) / reps


def _best(fns, reps, rounds=40):
    # Best (least disturbed) time of each fn, measured in interleaved rounds so that load from other
    # processes falls on all of them alike.
    best = [1e18] * len(fns)
    for _ in range(rounds):
        for i in range(len(fns)):
            t = _time(fns[i], reps[i])
            if t < best[i]:
                best[i] = t
    return best


def fft():
    # The transform is in place, so each call first restores the input (two viper copies); that copy is
    # timed on its own in the same rounds and subtracted, leaving kernel against kernel.
    n = 256
    tw = K.fft_table(n)
    src_r = _data(1, n, -16384, 16384)
    src_i = _data(2, n, -16384, 16384)
    re = array.array("h", src_r)
    im = array.array("h", src_i)

    def copy():
        V.gather(src_r, 0, 1, n, re)
        V.gather(src_i, 0, 1, n, im)

    def fast():
        copy()
        V.fft_q15(re, im, n, tw)

    def plain():
        copy()
        P.fft_q15(re, im, n, tw)

    c, f, p = _best((copy, fast, plain), (100, 100, 2))
    return f - c, p - c


def iir():
    n = 2000
    x = _data(3, n, -20000, 20000)
    y = array.array("h", bytes(2 * n))
    a = K.IIRQ(A_WEIGHTING[16000])
    return (_time(lambda: V.iir_q(x, y, n, a.coefs, a.state, a.nsec), 50),
            _time(lambda: P.iir_q(x, y, n, a.coefs, a.state, a.nsec), 2))


def features():
    with open("data/watch_excerpt.npy", "rb") as f:
        from sensorbox.shared import npy

        descr, shape, off = npy.parse_header(f.read(128))
        f.seek(off)
        raw = array.array("h", f.read(12 * F.WINDOW))
    fr = array.array("h", bytes(2 * 3 * F.WINDOW))
    for i in range(F.WINDOW):
        for c in range(3):
            fr[3 * i + c] = raw[6 * i + c]
    ex = F.Extractor(3)
    out = array.array("h", bytes(2 * len(F.names(3))))
    # the same extractor with the plain kernels swapped in, and back
    names = ("fft_q15", "isqrt", "gather", "magnitude", "moments", "sumsq_dev", "center", "crossings",
             "sort_i16", "band_power", "argmax_power", "dot")
    fast_k = [getattr(K, name) for name in names]
    plain_k = [getattr(P, name) for name in names]

    def use(kernels):
        for i in range(len(names)):
            setattr(K, names[i], kernels[i])

    def fast():
        ex.extract(fr, out)

    def plain():
        use(plain_k)
        ex.extract(fr, out)
        use(fast_k)

    f, p = _best((fast, plain), (25, 1))
    return f, p


def soundmeter():
    # The sound level meter on 256-sample chunks (16 ms at 16 kHz, A-weighting, Fast), against the viper
    # A-weighting filter alone on the same chunk: the ratio is the filter's share of the meter's time. Each
    # call restores the chunk first (the meter filters in place); that copy is timed and subtracted.
    # Then the bytes allocated per chunk, over 2 s of chunks (two interval ends included), garbage collector off.
    from sensorbox.shared.soundlevel import SoundLevelMeter

    n = 256
    x = _data(4, n, -8000, 8000)
    c = array.array("h", bytes(2 * n))
    m = SoundLevelMeter(16000, "A", "fast", -26.0, 1000)
    m.on_interval = lambda r: None

    def copy():
        V.gather(x, 0, 1, n, c)

    def meter():
        V.gather(x, 0, 1, n, c)
        m.process(c, n)

    def filt():
        V.gather(x, 0, 1, n, c)
        m.filter.run(c, c, n)

    cp, t, f = _best((copy, meter, filt), (100, 100, 100))
    chunks = 2 * 16000 // n
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(chunks):
        meter()
    alloc = (gc.mem_alloc() - a) / chunks
    gc.enable()
    return t - cp, f - cp, alloc


f = fft()
print("fft256_us", f[0], f[1], "us")
r = iir()
print("iir2000_us", r[0], r[1], "us")
e = features()
print("features3_us", e[0], e[1], "us")
s = soundmeter()
print("sound256_us", s[0], s[1], "us")
print("sound_alloc", s[2], 0, "B")
