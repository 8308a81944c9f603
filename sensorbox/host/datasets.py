"""Datasets on the host: the seglearn smartwatch IMU recordings and the excerpt the simulated device replays.

``watch_dataset()`` reads ``watch_dataset.npy`` out of PyPI ``seglearn``'s wheel (downloaded once with pip into
``build/cache``; seglearn itself is not installed). 140 recordings, 6-axis IMU at 50 Hz (accelerometer in g,
gyroscope in rad/s), 7 shoulder-exercise classes, 10 subjects; BSD-3-Clause (see data/LICENSE-watch-dataset).

``make_excerpt()`` converts a few recordings to what a real IMU's FIFO delivers: int16 counts at the ±8 g and
±2000 dps ranges (4096 LSB/g, 16.4 LSB/dps), and writes ``data/watch_excerpt.npy`` (frames x 6) with
``data/watch_excerpt.json`` (which recording starts where, its class and subject).
"""

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np

SEGLEARN = "seglearn==1.2.5"
WHEEL_MEMBER = "seglearn/data/watch_dataset.npy"
RATE_HZ = 50
ACCEL_LSB_PER_G = 4096  # ±8 g full scale
GYRO_LSB_PER_DPS = 16.4  # ±2000 dps full scale
COLUMNS = ("ax", "ay", "az", "gx", "gy", "gz")
#: What the dataset's class codes (its ``y_labels``) mean: (display name, description). seglearn's ``load_watch``
#: says the recordings are sets of 20 repetitions of shoulder exercises; the study it comes from (Burns et al.
#: 2018, arXiv:1802.01489) names seven exercises of a rotator-cuff physiotherapy programme.
WATCH_CLASSES = {
    "PEN": ("Pendulum", "Shoulder pendulum: the arm hangs and swings in small circles"),
    "ABD": ("Abduction", "Shoulder abduction: the straight arm is raised out to the side"),
    "FEL": ("Forward elevation", "Forward elevation: the straight arm is raised in front of the body"),
    "IR": ("Internal rotation", "Internal rotation against a resistance band, elbow at the side"),
    "ER": ("External rotation", "External rotation against a resistance band, elbow at the side"),
    "TRAP": ("Trapezius row", "Lower trapezius row with a resistance band"),
    "ROW": ("Bent-over row", "Bent-over row with a light dumbbell"),
}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXCERPT = os.path.join(REPO, "data", "watch_excerpt.npy")


class DatasetError(Exception):
    pass


def _wheel(cache_dir):
    os.makedirs(cache_dir, exist_ok=True)
    for name in os.listdir(cache_dir):
        if name.startswith("seglearn-") and name.endswith(".whl"):
            return os.path.join(cache_dir, name)
    sys.stderr.write("downloading {}'s wheel from PyPI into {} (once; it holds the watch dataset)\n".format(
        SEGLEARN, cache_dir))
    p = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", cache_dir, SEGLEARN], capture_output=True, text=True)
    if p.returncode != 0:
        said = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DatasetError("could not download {} with pip ({}): check the network or pip's index, or put the "
                           "wheel into {}".format(SEGLEARN, said, cache_dir))
    return _wheel(cache_dir)


def watch_dataset(cache_dir=None):
    """The full smartwatch dataset as a dict: X (list of float arrays, frames x 6), y, subject, y_labels."""
    cache_dir = cache_dir or os.path.join(REPO, "build", "cache")
    with zipfile.ZipFile(_wheel(cache_dir)) as z:
        raw = z.read(WHEEL_MEMBER)
    d = np.load(io.BytesIO(raw), allow_pickle=True).item()
    return {"X": d["X"], "y": np.asarray(d["y"]), "subject": np.asarray(d["subject"]),
            "y_labels": list(d["y_labels"]), "columns": COLUMNS}


def to_counts(x):
    """Float IMU frames (g, rad/s) to int16 counts as the sensor's FIFO holds them."""
    scale = np.array([ACCEL_LSB_PER_G] * 3 + [GYRO_LSB_PER_DPS * 180 / np.pi] * 3)
    return np.clip(np.round(x * scale), -32768, 32767).astype("<i2")


def make_excerpt(out_npy=EXCERPT, subjects=(1, 2), cache_dir=None):
    """Write the replay excerpt: one recording per class for each of ``subjects``, classes in order."""
    d = watch_dataset(cache_dir)
    parts, segments, start = [], [], 0
    for subject in subjects:
        for cls in range(len(d["y_labels"])):
            idx = [i for i in range(len(d["y"])) if d["y"][i] == cls and d["subject"][i] == subject]
            if not idx:
                continue
            i = idx[0]
            counts = to_counts(d["X"][i])
            parts.append(counts)
            segments.append({"start": start, "frames": len(counts), "label": d["y_labels"][cls],
                             "subject": int(subject), "source_index": int(i)})
            start += len(counts)
    data = np.ascontiguousarray(np.concatenate(parts))
    np.save(out_npy, data)
    meta = {"source": "seglearn 1.2.5 watch_dataset.npy (BSD-3-Clause)", "rate_hz": RATE_HZ,
            "columns": list(COLUMNS), "accel_lsb_per_g": ACCEL_LSB_PER_G, "gyro_lsb_per_dps": GYRO_LSB_PER_DPS,
            "segments": segments}
    with open(out_npy[:-4] + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return data, meta
