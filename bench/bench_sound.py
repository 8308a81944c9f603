"""Sound benchmarks: the sound features per 16 ms frame with the viper kernels against the plain ones (the
browser's) in the same run; features + classification of a 16 kHz stream as a share of one core here, with an
ESP32 estimate at 50x (budget: 15 % of a core here); bytes allocated per second of sound; and the accuracy of a
sound classifier on the real recordings Debian ships (sensorbox train sounds --sensor sound), grouped CV, next to
scikit-learn's default forest on the same features and folds; and the write throughput of audio clips (issue 18.1)
against the microphone's rate."""

import os

from bench.mp import run_script
from sensorbox.host import bundle, train


def run():
    out = os.path.join(bundle.BUILD, "bench-sound-model")
    rep = train.train("sounds", out, quiet=True, plot=False, sensor="sound", compare=["knn", "baseline"])
    r = run_script("mp_sound.py", heap="256wK", args=[out])
    rows = []
    v, b, unit = r["frame_us"]
    rows.append(("sound features per 16 ms frame (512-point FFT, 16 bands): viper vs plain", round(v, 1), round(b, 1),
                 round(b / v, 1), unit))
    rows.append(("sound features: bytes allocated per second of 16 kHz sound (8 windows)", r["alloc_1s"][0], None,
                 None, "bytes"))
    rows.append(("sound classifier step per window (20 trees, smoothing, decision)", round(r["classify_us"][0], 1),
                 None, None, "us"))
    cpu, feat, _ = r["cpu_16k_percent"]
    rows.append(("features + classification at 16 kHz, % of one core here (budget 15); features alone",
                 round(cpu, 2), round(feat, 2), None, "%"))
    rows.append(("the same on an ESP32 at 240 MHz, estimated at 50x (% of a core)", round(cpu * 50, 1), None, None,
                 "%"))
    w, mic, _ = r["clip_write_Bps"]
    rows.append(("audio clips: bytes/s written to the store (3 s clips, 16 kHz, 0.5 s pre-trigger) vs the mic's",
                 round(w), mic, round(w / mic, 1), "B/s"))
    us, chunk, _ = r["clip_chunk_us"]
    rows.append(("audio clips: the sound meter's hook per 256-sample chunk while a clip records vs the chunk's 16 ms",
                 round(us, 1), chunk, round(chunk / us, 1), "us"))
    for k in ("forest", "knn", "baseline"):
        v = rep["kinds"][k]
        rows.append(("sounds (press/release/speech), 5-fold CV by key/speaker: {}{}".format(
            k, " (scikit-learn default forest)" if k == "baseline" else ""), round(v["accuracy_mean"], 3),
            round(rep["kinds"]["baseline"]["accuracy_mean"], 3),
            round(v["accuracy_mean"] / rep["kinds"]["baseline"]["accuracy_mean"], 3), "accuracy"))
    return rows
