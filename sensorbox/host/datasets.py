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


# --- bring your own data: import, read, features ----------------------------------------------------------------

def import_recordings(sources, out_dir, **kw):
    """Convert recordings (CSV, .npy, WAV, .ts, or folders of them) into a dataset folder: ``sensorbox import``.
    Keyword arguments and what it writes: ``sensorbox.host.importer.import_recordings`` and docs/datasets.md."""
    from sensorbox.host import importer

    return importer.import_recordings(sources, out_dir, **kw)


def load(source, group_by="session", rate=None, notes=None):
    """(recordings, sample rate, what the groups are) of anything ``sensorbox train`` takes: a dataset folder
    (``sensorbox import``), a ``sensorbox pull`` folder, ``watch``, ``excerpt``, or a list of them. A recording
    is a tuple (int16 frames x channels, label, group) with ``.name``, ``.t0_ms`` and ``.rate``."""
    from sensorbox.host import train

    return train.dataset(source, group_by, rate, notes)


def features_frame(source, channels=3, window=None, hop=None, group_by="session", rate=None, progress=None,
                   sensor="accel"):
    """Windows x features of ``source`` as a pandas DataFrame: ``recording``, ``group``, ``label``, ``start_s``
    (window start, seconds from its recording's start), ``time`` (UTC time of the window's first frame, when the
    recording's start is known), then one int16 column per feature in ``features.names(channels)`` order
    (names and scales: docs/datasets.md). ``df.attrs`` holds rate_hz, window, hop, channels, feature_version and
    what was dropped. ``sensor`` "sound": the sound features (``sensorbox.shared.soundfeatures``; ``start_s`` from
    the window's first sample)."""
    import pandas as pd

    from sensorbox.host import train
    from sensorbox.shared import features as feat
    from sensorbox.shared import soundfeatures as sf

    sound = sensor == "sound"
    window = window or (sf.WINDOW if sound else feat.WINDOW)
    hop = hop or (sf.WINDOW_HOP if sound else window // 2)
    notes = {}
    recs, rate, _ = train.dataset(source, group_by, rate, notes)
    w = train.window_table(recs, channels, window, hop, progress, sensor)
    rec = w["rec"]
    t0 = np.array([recs[i].t0_ms if recs[i].t0_ms is not None else -1 for i in rec], dtype=np.int64)
    start_ms = np.round(w["start"] * 1000.0 / rate).astype(np.int64)
    time = pd.to_datetime(np.where(t0 >= 0, t0 + start_ms, 0), unit="ms", utc=True)
    df = pd.DataFrame({"recording": [recs[i].name for i in rec], "group": w["g"], "label": w["y"],
                       "start_s": w["start"] / float(rate), "time": time.where(t0 >= 0)})
    df = pd.concat([df, pd.DataFrame(w["X"], columns=list(sf.names() if sound else feat.names(channels)))], axis=1)
    df.attrs.update({"rate_hz": rate, "window": window, "hop": hop, "channels": 1 if sound else channels,
                     "sensor": sensor, "feature_version": sf.FEATURE_VERSION if sound else feat.FEATURE_VERSION,
                     "dropped": w["dropped"],
                     "warnings": notes.get("warnings", [])})
    return df


def write_features(df, path):
    """Write ``features_frame``'s table as Parquet (``.parquet``) or CSV (anything else)."""
    if path.endswith(".parquet") or path.endswith(".pq"):
        try:
            df.to_parquet(path, index=False)
        except ImportError as e:
            raise DatasetError("writing Parquet needs pyarrow ({}): pip install pyarrow, or write .csv".format(e))
    else:
        df.to_csv(path, index=False)


FEATURES_EPILOG = """examples:
  sensorbox features data/bm-train --out bm.parquet        windows x features as Parquet (pandas.read_parquet)
  sensorbox features pulled/ --out pulled.csv              data pulled from devices, cut by their labels
  sensorbox features watch --channels 6 --out watch6.csv   the watch dataset with the gyroscope features
  sensorbox features sounds --sensor sound --out sounds.csv    sound features of the recordings Debian ships

Columns: recording, group, label, start_s (window start within its recording, s), time (UTC, when known), then
the features in model input order (int16; names and scales in docs/datasets.md). Windows: 128 frames, hop 64,
as the device computes them.
"""


def cmd_features(args):
    import sys

    from sensorbox.host import train

    try:
        df = features_frame(args.data if len(args.data) > 1 else args.data[0], args.channels, hop=args.hop,
                            group_by=args.group_by, rate=args.rate,
                            progress=None if args.quiet else train._bar("features"), sensor=args.sensor)
        write_features(df, args.out)
    except DatasetError as e:
        sys.exit("error: {}".format(e))
    except ModuleNotFoundError as e:
        sys.exit("error: sensorbox features needs {}: pip install -e . (pandas)".format(e.name))
    for w in df.attrs["warnings"]:
        print("WARNING: " + w, file=sys.stderr)
    w = train.dropped_warning(df.attrs["dropped"], train.window_span(df.attrs["window"], df.attrs["rate_hz"],
                                                                    args.sensor), df.attrs["rate_hz"])
    if w:
        print("WARNING: " + w, file=sys.stderr)
    print("{} windows x {} features ({} recordings, {} labels, at {} Hz) written to {}".format(
        len(df), df.shape[1] - 5, df["recording"].nunique(), df["label"].nunique(), df.attrs["rate_hz"], args.out))
    return 0


def add_parsers(sub):
    """``sensorbox import`` and ``sensorbox features``."""
    import argparse

    from sensorbox.host import importer

    importer.add_parser(sub)
    p = sub.add_parser("features", help="windows x features of a dataset as Parquet or CSV (for pandas)",
                       description="Compute the model's input features (the device's code) for every window of DATA "
                                   "and write them as a table.",
                       epilog=FEATURES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", nargs="+", help="what sensorbox train takes (folders from import or pull, "
                                                           "watch, excerpt)")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.parquet or FILE.csv")
    p.add_argument("--sensor", choices=("accel", "sound"), default="accel",
                   help="accel (default) or sound: the sound features of data imported with --sensor sound")
    p.add_argument("--channels", type=int, choices=(3, 6), default=3, help="3 (accelerometer, default) or 6")
    p.add_argument("--hop", type=int, help="frames between windows (default 64)")
    p.add_argument("--rate", type=float, metavar="HZ", help="when the data holds several rates, the one to use")
    p.add_argument("--group-by", choices=("session", "day"), default="session",
                   help="pulled data: groups are label ranges (default) or device + UTC day")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_features)


def package_data(package, path):
    """The absolute path of a data file shipped inside an installed package, found without importing it, e.g.
    ``package_data("sktime", "datasets/data/BasicMotions/BasicMotions_TRAIN.ts")``."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("{} is not installed: pip install {}".format(package, package))
    full = os.path.join(list(spec.submodule_search_locations)[0], *path.split("/"))
    if not os.path.exists(full):
        raise DatasetError("{} has no {} (another version of it?)".format(package, path))
    return full
