"""``sensorbox import``: recordings from elsewhere (CSV, .npy, WAV, the UEA/UCR ``.ts`` format, or folders of them)
into the dataset folder format that ``sensorbox train``, ``evaluate`` and ``features`` read (docs/datasets.md).

Per input file: find the rate (declared with ``rate``, else from a time column, the WAV header or a sidecar),
the channels (``columns``, else detected), the labels (a column, a sidecar, a fixed name, the folder or file name,
a pattern) and groups; cut it where the label or group changes and at gaps in its time column; resample each piece
to ``to_rate`` (anti-alias filter when slowing down, then linear interpolation); convert to the device's int16
counts (accelerometer 4096 per g, ±8 g; gyroscope 16.4 per dps, ±2000 dps); and write ``OUT/<name>.npy`` (int16
frames x channels) with ``OUT/<name>.json`` (rate, channels, units, source, labelled segments). It warns, with
counts, about what a model trained on the result would get wrong: gravity missing, units that look wrong, values
clipped at the source or by the device's range, pieces shorter than one analysis window, rates too low for the
band features.

Single-axis input: the axis becomes ``ax`` (or the axis named with ``az=COLUMN`` and so on); the other axes are
written as 0. The 3-axis feature extractor then gives that axis's features, constant 0 for the absent axes and
their correlations, |axis| as the magnitude and a gravity direction along it: a model trained on such data needs
a device mounted the same way. Six channels (accelerometer + gyroscope) are kept; ``train --channels 3`` uses
the first three.
"""

import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile
import warnings

import numpy as np

from sensorbox.host import datasets
from sensorbox.shared import features as feat
from sensorbox.shared import soundfeatures as sf

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
SENSORS = ("accel", "sound")
ACCEL_UNITS = {"g": 1.0, "mg": 0.001, "m/s2": 1 / 9.80665, "counts": None}
GYRO_UNITS = {"dps": 1.0, "rad/s": 180 / math.pi, "counts": None}
EXTENSIONS = (".csv", ".tsv", ".txt", ".npy", ".wav", ".ts")
_TIME_NAMES = ("t", "time", "timestamp", "ts", "seconds", "secs", "datetime", "date", "epoch", "elapsed")
_GAP = 2.5  # a step longer than this many sample periods cuts a recording


class ImportProblem(datasets.DatasetError):
    """An input cannot be imported; the message says why and what to do."""


# --- reading ---------------------------------------------------------------------------------------------------

def _norm(name):
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _is_time_name(name):
    n = _norm(name)
    return n in _TIME_NAMES or n.startswith("timestamp") or n.startswith("time") or n in ("tms", "tus", "tns")


def _guess_axis(name):
    """The device channel a column name stands for (``ax``...``gz``), or None."""
    n = _norm(name)
    if len(n) < 1 or n[-1] not in "xyz":
        return None
    stem, axis = n[:-1], n[-1]
    if stem in ("", "a", "acc", "accel", "accelerometer", "acceleration", "linacc", "useracc", "useracceleration",
                "accelerometerraw"):
        return "a" + axis
    if stem in ("g", "gyr", "gyro", "gyroscope", "rot", "rotation", "rotationrate", "angvel", "gyroscoperaw"):
        return "g" + axis
    return None


def read_wav(path, bits=False):
    """(values frames x channels as float64, sample rate, sample kind "int"/"float") of a PCM or IEEE-float WAV,
    and its bits per sample as a fourth item when ``bits``. A malformed file raises ImportProblem naming it and
    what is wrong."""
    want_bits = bits

    def bad(why):
        return ImportProblem("{}: not a readable WAV file: {}".format(path, why))

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImportProblem("{}: cannot read it ({})".format(path, e.strerror or e))
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ImportProblem("{}: not a WAV file (no RIFF/WAVE header)".format(path))
    pos, fmt, body = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunk = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(chunk) < 16:
                raise bad("its fmt chunk has {} bytes, at least 16 are needed".format(len(chunk)))
            fmt = struct.unpack("<HHIIHH", chunk[:16])
            if fmt[0] == 0xFFFE and len(chunk) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real format is in the GUID
                fmt = (struct.unpack("<H", chunk[24:26])[0],) + fmt[1:]
        elif cid == b"data":
            if len(chunk) < size:
                raise bad("its data chunk says {} bytes but the file ends after {} (cut short?)"
                          .format(size, len(chunk)))
            body = chunk
        pos += 8 + size + (size & 1)
    if fmt is None or body is None:
        raise ImportProblem("{}: WAV file without fmt or data chunk".format(path))
    tag, ch, rate, _, _, bits = fmt
    if ch < 1:
        raise bad("it says {} channels".format(ch))
    if rate < 1:
        raise bad("it says a sample rate of {} Hz".format(rate))
    width = bits // 8
    if not ((tag == 1 and bits in (8, 16, 24, 32)) or (tag == 3 and bits in (32, 64))):
        raise ImportProblem("{}: WAV format {} with {} bits is not supported (PCM 8/16/24/32 bits or IEEE float)"
                            .format(path, tag, bits))
    n = len(body) // (width * ch)
    if n < 1:
        raise bad("its data chunk holds no whole frame ({} bytes, {} per frame)".format(len(body), width * ch))
    body = body[:n * width * ch]
    if bits == 24:
        b = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float64)
    else:
        dt = ("<f{}" if tag == 3 else {1: "u1", 2: "<i2", 4: "<i4"}[width]).format(width)
        v = np.frombuffer(body, dtype=dt).astype(np.float64)
        if bits == 8:
            v -= 128
    if tag == 3 and not np.isfinite(v).all():
        raise bad("{} samples are not finite numbers (NaN or infinity)".format(int((~np.isfinite(v)).sum())))
    out = (v.reshape(n, ch), float(rate), "float" if tag == 3 else "int")
    return out + (bits,) if want_bits else out


def read_ts(path):
    """Cases of a UEA/UCR ``.ts`` file (sktime/aeon's time-series classification format): list of (values
    frames x dimensions, class label or None)."""
    cases, in_data, labelled = [], False, False
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    labelled = low.split()[1:2] == ["true"]
                elif low.startswith("@timestamps") and low.endswith("true"):
                    raise ImportProblem("{}: .ts files with timestamps are not supported; convert to CSV with a "
                                        "time column".format(path))
                elif low.startswith("@data"):
                    in_data = True
                continue
            parts = line.split(":")
            label = parts.pop().strip() if labelled else None
            try:
                dims = [np.array([float(v) if v not in ("?", "NaN") else np.nan for v in p.split(",")])
                        for p in parts]
            except ValueError as e:
                raise ImportProblem("{} line {}: {}".format(path, lineno, e))
            if not dims:
                raise ImportProblem("{} line {}: a case with no values".format(path, lineno))
            n = min(len(d) for d in dims)
            cases.append((np.stack([d[:n] for d in dims], axis=1), label))
    if not cases:
        raise ImportProblem("{}: no @data cases".format(path))
    return cases


def _read_table(path):
    import pandas as pd

    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    sep = "\t" if "\t" in first else (";" if ";" in first and "," not in first else
                                       ("," if "," in first else r"\s+"))
    fields = [x.strip().strip('"') for x in re.split(sep if sep != r"\s+" else r"\s+", first.strip())]
    numeric = sum(_is_number(x) for x in fields)
    header = 0 if numeric < len(fields) / 2 else None
    try:
        df = pd.read_csv(path, sep=sep, header=header, engine="python" if sep == r"\s+" else "c",
                         encoding_errors="replace")
    except (ValueError, OSError) as e:  # pandas' parser and empty-data errors are ValueErrors
        raise ImportProblem("{}: not a readable table: {}".format(path, str(e).strip() or type(e).__name__))
    if header is None:
        df.columns = [str(c) for c in range(df.shape[1])]
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _is_number(x):
    try:
        float(x)
        return True
    except ValueError:
        return False


# --- options --------------------------------------------------------------------------------------------------

def parse_columns(spec):
    """``--columns``: "acc_x,acc_y,acc_z" (in device order ax, ay, az, gx, gy, gz; 1, 3 or 6 of them) or
    "az=vertical,ax=2" (named). Returns {device channel: input column (name or index as text)}."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return dict(spec)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    if all("=" in s for s in items):
        out = {}
        for s in items:
            k, v = s.split("=", 1)
            k = k.strip().lower()
            if k not in CHANNELS:
                raise ImportProblem("--columns {}: {} is not a device channel ({})".format(spec, k,
                                                                                         ", ".join(CHANNELS)))
            out[k] = v.strip()
        return out
    if any("=" in s for s in items) or len(items) not in (1, 3, 6):
        raise ImportProblem("--columns {}: give 1, 3 or 6 input columns in the order {} (or name them: "
                            "az=vertical)".format(spec, ", ".join(CHANNELS)))
    return dict(zip(CHANNELS, items))


def _pick(columns, mapping, path):
    """Indices into ``columns`` for the device channels in ``mapping`` (or detected). Returns {channel: index}."""
    names = [str(c) for c in columns]
    if mapping:
        out = {}
        for ch, col in mapping.items():
            if col in names:
                out[ch] = names.index(col)
            elif col.lstrip("-").isdigit() and -len(names) <= int(col) < len(names):
                out[ch] = int(col) % len(names)
            else:
                raise ImportProblem("{}: no column {!r} (columns: {})".format(path, col, ", ".join(names)))
        return out
    found = {}
    for i, n in enumerate(names):
        ch = _guess_axis(n)
        if ch and ch not in found:
            found[ch] = i
    if all(a in found for a in ("ax", "ay", "az")):
        return {ch: i for ch, i in found.items()}
    return None


def _rows_label(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    s = str(v).strip()
    return s if s and s.lower() != "nan" else None


class Options:
    """What ``import_recordings`` was asked to do (the keyword arguments, checked)."""

    def __init__(self, rate=None, to_rate=feat.RATE_HZ, columns=None, units=None, gyro_units="dps",
                 lsb_per_g=datasets.ACCEL_LSB_PER_G, lsb_per_dps=datasets.GYRO_LSB_PER_DPS, time_column=None,
                 time_unit=None, label_column=None, label=None, label_from=None, label_pattern=None,
                 group_column=None, group=None, group_from=None, group_pattern=None, window=feat.WINDOW,
                 sensor="accel"):
        if sensor not in SENSORS:
            raise ImportProblem("--sensor {}: one of {}".format(sensor, ", ".join(SENSORS)))
        if sensor == "sound":
            if to_rate == feat.RATE_HZ:  # the accelerometer's default: the sound features' instead
                to_rate = sf.RATE_HZ
            if to_rate not in sf.RATES:
                raise ImportProblem("--to-rate {:g}: sound is imported at {} Hz (the rates a device's microphone "
                                    "samples and the sound features take)".format(to_rate, " or ".join(
                                        str(r) for r in sf.RATES)))
            to_rate = int(to_rate)
            window = sf.frame_size(to_rate) * (sf.WINDOW + 1) // 2  # samples in one window of frames
        if units is not None and units not in ACCEL_UNITS:
            raise ImportProblem("--units {}: one of {}".format(units, ", ".join(ACCEL_UNITS)))
        if gyro_units not in GYRO_UNITS:
            raise ImportProblem("--gyro-units {}: one of {}".format(gyro_units, ", ".join(GYRO_UNITS)))
        for what, v in (("--rate", 1 if rate is None else rate), ("--to-rate", to_rate), ("--lsb-per-g", lsb_per_g),
                        ("--lsb-per-dps", lsb_per_dps)):
            if not 0 < v < math.inf:
                raise ImportProblem("{} must be a number > 0".format(what))
        if label_from not in (None, "folder", "name"):
            raise ImportProblem("--label-from {}: folder or name".format(label_from))
        if group_from not in (None, "folder", "name", "file"):
            raise ImportProblem("--group-from {}: folder or name".format(group_from))
        if time_unit not in (None, "s", "ms", "us", "ns", "datetime"):
            raise ImportProblem("--time-unit {}: s, ms, us, ns or datetime".format(time_unit))
        for what, pat in (("--label-pattern", label_pattern), ("--group-pattern", group_pattern)):
            if pat is not None:
                try:
                    if re.compile(pat).groups < 1:
                        raise ImportProblem("{} {}: needs a (group) around the part to keep".format(what, pat))
                except re.error as e:
                    raise ImportProblem("{} {}: {}".format(what, pat, e))
        self.__dict__.update(dict(rate=rate, to_rate=to_rate, columns=parse_columns(columns), units=units,
                                  gyro_units=gyro_units, lsb_per_g=lsb_per_g, lsb_per_dps=lsb_per_dps,
                                  time_column=time_column, time_unit=time_unit, label_column=label_column,
                                  label=label, label_from=label_from, label_pattern=label_pattern,
                                  group_column=group_column, group=group, group_from=group_from,
                                  group_pattern=group_pattern, window=window, sensor=sensor))

    def scale(self, channels, units):
        """Counts per input unit for each device channel in ``channels``; ``units``: the accelerometer's."""
        out = []
        for ch in channels:
            if ch[0] == "a":
                u = ACCEL_UNITS[units]
                out.append(1.0 if u is None else u * datasets.ACCEL_LSB_PER_G)
                if u is None:
                    out[-1] = datasets.ACCEL_LSB_PER_G / self.lsb_per_g
            else:
                u = GYRO_UNITS[self.gyro_units]
                out.append(datasets.GYRO_LSB_PER_DPS / self.lsb_per_dps if u is None else
                           u * datasets.GYRO_LSB_PER_DPS)
        return np.array(out)


# --- one input file -> pieces -----------------------------------------------------------------------------------

class _Piece:
    """A stretch of input rows with one label and group: values (rows x mapped channels, input units), times in
    seconds (or None: uniform at ``rate``), and where it came from."""

    def __init__(self, values, t, rate, label, group, name, t0_ms=None):
        self.values, self.t, self.rate, self.label, self.group = values, t, rate, label, group
        self.name, self.t0_ms = name, t0_ms
        self.channels = None  # device channel of each column of values
        self.units = None  # the accelerometer's units when the input says (an integer WAV: counts)


def _from_path(rel, opt, what):
    """A label or group taken from the input's relative path (folder, file name, pattern), or None."""
    pattern = opt.label_pattern if what == "label" else opt.group_pattern
    source = opt.label_from if what == "label" else opt.group_from
    if pattern:
        m = re.search(pattern, rel.replace(os.sep, "/"))
        return m.group(1) if m else None
    if source == "folder":
        d = os.path.dirname(rel)
        return os.path.basename(d) if d else None
    if source in ("name", "file"):
        return os.path.splitext(os.path.basename(rel))[0]
    return None


def _time_seconds(col, name, unit):
    """(seconds from the first row, epoch ms of the first row or None, the unit used) for a time column."""
    import pandas as pd

    if unit != "datetime" and col.dtype.kind not in "fiub":
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().sum() > len(col) / 2:  # numbers with a few damaged values
            raise ImportProblem("time column {}: {} values are not numbers (first: {!r})".format(
                name, int(num.isna().sum()), str(col[num.isna()].iloc[0])))
    if unit == "datetime" or col.dtype.kind not in "fiub":
        with warnings.catch_warnings():  # pandas warns when it parses value by value; unparsed ones are counted
            warnings.simplefilter("ignore")
            ts = pd.to_datetime(col, errors="coerce")
        if ts.isna().any():
            raise ImportProblem("time column {}: {} values are not times".format(name, int(ts.isna().sum())))
        ns = ts.astype("int64").to_numpy()
        return (ns - ns[0]) / 1e9, int(ns[0] // 1_000_000), "datetime"
    v = col.to_numpy(dtype=np.float64)
    if not len(v) or not np.isfinite(v).all():
        raise ImportProblem("time column {}: {} values are not numbers".format(name, int((~np.isfinite(v)).sum())))
    if unit is None:
        n = _norm(name)
        unit = next((u for u in ("ns", "us", "ms") if n.endswith(u)), None)
    if unit is None:
        steps = np.diff(v)
        dt = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
        whole = bool(np.all(v == np.round(v)))
        order = ("ms", "us", "ns", "s") if whole else ("s", "ms", "us", "ns")
        unit = next((u for u in order if dt and 1.0 <= 1.0 / (dt * _UNIT[u]) <= 4000.0), order[0])
    sec = (v - v[0]) * _UNIT[unit]
    epoch = v[0] * _UNIT[unit]
    t0 = int(round(epoch * 1000)) if 946684800 <= epoch <= 4102444800 else None  # 2000..2100: an epoch time
    return sec, t0, unit


_UNIT = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _read_file(path, rel, opt, notes):
    """The pieces of one input file."""
    ext = os.path.splitext(path)[1].lower()
    side = os.path.splitext(path)[0] + ".json"
    sidecar = None
    if ext != ".json" and os.path.exists(side):
        try:
            with open(side) as f:
                sidecar = json.load(f)
        except ValueError as e:
            raise ImportProblem("{}: not JSON ({})".format(side, e))
        _check_sidecar(sidecar, side)
    rate = opt.rate or (sidecar or {}).get("rate_hz")
    label = opt.label or (sidecar or {}).get("label") or _from_path(rel, opt, "label")
    group = opt.group or (sidecar or {}).get("group") or _from_path(rel, opt, "group") or \
        os.path.splitext(rel)[0].replace(os.sep, "/")
    name = os.path.splitext(rel)[0]
    if opt.sensor == "sound":
        return _read_sound(path, rel, ext, opt, notes, sidecar, rate, label, group, name)
    if ext == ".ts":
        if rate is None:
            raise ImportProblem("{}: a .ts file does not say its sample rate: give --rate HZ".format(path))
        out = []
        for i, (v, lab) in enumerate(read_ts(path)):
            cols = _pick([str(c) for c in range(v.shape[1])], opt.columns, path) or _default_map(v.shape[1], path)
            v = v[:, [cols[c] for c in cols]]
            keep = np.isfinite(v).all(axis=1)
            g = opt.group or (sidecar or {}).get("group") or (_from_path(rel, opt, "group") if opt.group_pattern or
                                                             opt.group_from == "folder" else None)
            out.append(_Piece(v[keep], None, float(rate), opt.label or lab or label,
                              g or "{}#{}".format(name, i), "{}#{}".format(name, i)))
            out[-1].channels = list(cols)
        return out
    if ext == ".wav":
        v, wav_rate, kind = read_wav(path)
        if opt.rate and abs(opt.rate - wav_rate) > 0.02 * wav_rate:
            notes.append("{}: --rate {} Hz overrides the {} Hz of its WAV header".format(rel, opt.rate, wav_rate))
        cols = _pick([str(c) for c in range(v.shape[1])], opt.columns, path) or _default_map(v.shape[1], path)
        p = _Piece(v[:, [cols[c] for c in cols]], None, float(opt.rate or wav_rate), label, group, name)
        p.channels = list(cols)
        p.units = "counts" if kind == "int" else "g"  # unless --units says otherwise
        return _segments(p, sidecar, path)
    if ext == ".npy":
        try:
            with warnings.catch_warnings():  # a damaged header can make numpy warn about Python 2 files
                warnings.simplefilter("ignore")
                a = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - numpy's header parser raises many kinds for a damaged file
            raise ImportProblem("{}: not a readable .npy file: {}".format(path, str(e).strip() or type(e).__name__))
        t = None
        t0 = None
        if a.dtype.names:
            if a.ndim != 1 or any(a.dtype[n].shape for n in a.dtype.names):
                raise ImportProblem("{}: expected one record per frame with a number in each field, got shape {} "
                                    "of {}".format(path, a.shape, a.dtype))
            names = list(a.dtype.names)
            tcol = opt.time_column or next((n for n in names if _is_time_name(n)), None)
            cols = _pick(names, opt.columns, path)
            if cols is None:
                rest = [n for n in names if n != tcol]
                cols = _default_map(len(rest), path, rest)
                cols = {c: names.index(rest[i]) for c, i in cols.items()}
            if tcol is not None:
                import pandas as pd

                t, t0, _ = _time_seconds(pd.Series(a[tcol]), tcol, opt.time_unit or
                                         ("ms" if tcol == "t" and a.dtype[tcol].kind == "i" else None))
            for c in cols:
                _numeric(a.dtype[names[cols[c]]], path, names[cols[c]])
            v = np.stack([a[names[cols[c]]].astype(np.float64) for c in cols], axis=1)
        else:
            _numeric(a.dtype, path, "data")
            a = a.astype(np.float64)
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2:
                raise ImportProblem("{}: expected frames x channels, got shape {}".format(path, a.shape))
            cols = _pick([str(c) for c in range(a.shape[1])], opt.columns, path) or _default_map(a.shape[1], path)
            v = a[:, [cols[c] for c in cols]]
        if t is None and rate is None:
            raise ImportProblem("{}: the file does not say its sample rate: give --rate HZ (or a .json sidecar "
                                "with rate_hz)".format(path))
        if not np.isfinite(v).all():
            raise ImportProblem("{}: {} rows hold NaN or infinite values: remove them, or write CSV, where such rows "
                                "are left out".format(path, int((~np.isfinite(v)).any(axis=1).sum())))
        p = _Piece(v, t, float(rate) if rate else None, label, group, name, t0)
        p.channels = list(cols)
        return _segments(p, sidecar, path)
    # CSV / TSV / TXT
    df = _read_table(path)
    names = list(df.columns)
    tcol = opt.time_column
    if tcol is not None and tcol not in names:
        raise ImportProblem("{}: no time column {!r} (columns: {})".format(path, tcol, ", ".join(names)))
    if tcol is None:  # found even with --rate: it is not data, and it shows gaps and a rate that disagrees
        tcol = next((n for n in names if _is_time_name(n)), None)
    for what, c in (("label", opt.label_column), ("group", opt.group_column)):
        if c is not None and c not in names:
            raise ImportProblem("{}: no {} column {!r} (columns: {})".format(path, what, c, ", ".join(names)))
    cols = _pick(names, opt.columns, path)
    if cols is None:
        skip = {tcol, opt.label_column, opt.group_column}
        rest = [n for n in names if n not in skip and df[n].dtype.kind in "fiu"]
        if len(rest) not in (1, 3, 6):
            raise ImportProblem("{}: cannot tell which columns hold the accelerometer (numeric columns: {}); give "
                                "--columns, e.g. --columns {}".format(path, ", ".join(rest) or "none",
                                                                     ",".join(rest[:3]) or "x,y,z"))
        cols = _default_map(len(rest), path, rest)
        cols = {c: names.index(rest[i]) for c, i in cols.items()}
    for c, i in cols.items():
        if df[names[i]].dtype.kind not in "fiu":
            raise ImportProblem("{}: column {} ({}) is not numeric".format(path, names[i], c))
    v = df[[names[cols[c]] for c in cols]].to_numpy(dtype=np.float64)
    t = t0 = None
    if tcol is not None:
        t, t0, unit = _time_seconds(df[tcol], tcol, opt.time_unit)
        notes.append("{}: time column {} read as {}".format(rel, tcol, unit))
    elif rate is None:
        raise ImportProblem("{}: no time column and no --rate: give --rate HZ or --time-column NAME".format(path))
    keep = np.isfinite(v).all(axis=1)
    if not keep.all():
        notes.append("{}: {} rows with missing or non-numeric values left out".format(rel, int((~keep).sum())))
    labels = (np.array([_rows_label(v) for v in df[opt.label_column].tolist()], dtype=object)
              if opt.label_column else None)
    groups = np.array([str(v) for v in df[opt.group_column].tolist()], dtype=object) if opt.group_column else None
    if labels is not None:
        unlabelled = int(sum(lab is None for lab in labels))
        if unlabelled:
            notes.append("{}: {} rows without a label left out".format(rel, unlabelled))
        keep &= np.array([lab is not None for lab in labels])
    p = _Piece(v, t, float(rate) if rate else None, label, group, name, t0)
    p.channels = list(cols)
    return _split_rows(p, keep, labels, groups)


_PCM_SCALE = {8: 256.0, 16: 1.0, 24: 1 / 256.0, 32: 1 / 65536.0}  # integer WAV samples to 16-bit PCM


def _read_sound(path, rel, ext, opt, notes, sidecar, rate, label, group, name):
    """The pieces of one sound file (WAV, or .npy of samples), mono, in 16-bit PCM units."""
    if ext == ".wav":
        v, wav_rate, kind, bits = read_wav(path, bits=True)
        if opt.rate and abs(opt.rate - wav_rate) > 0.02 * wav_rate:
            notes.append("{}: --rate {} Hz overrides the {} Hz of its WAV header".format(rel, opt.rate, wav_rate))
        v = v * (32767.0 if kind == "float" else _PCM_SCALE[bits])
        rate = opt.rate or wav_rate
    elif ext == ".npy":
        try:
            v = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - numpy's header parser raises many kinds for a damaged file
            raise ImportProblem("{}: not a readable .npy file: {}".format(path, str(e).strip() or type(e).__name__))
        if v.dtype.names or v.ndim not in (1, 2):
            raise ImportProblem("{}: expected samples (1-D) or samples x channels, got {} {}".format(
                path, v.dtype, v.shape))
        _numeric(v.dtype, path, "data")
        v = v.astype(np.float64).reshape(len(v), -1)
        if v.dtype.kind == "f" and len(v) and np.abs(v).max() <= 1.0:
            v = v * 32767.0
        if rate is None:
            raise ImportProblem("{}: a .npy file does not say its sample rate: give --rate HZ (or a .json sidecar "
                                "with rate_hz)".format(path))
        if not np.isfinite(v).all():
            raise ImportProblem("{}: {} samples are NaN or infinite".format(path, int((~np.isfinite(v)).sum())))
    else:
        raise ImportProblem("{}: sound is imported from WAV files (or .npy arrays of samples), not {}".format(
            path, ext))
    if v.shape[1] > 1:
        cols = opt.columns
        if cols:
            col = next(iter(cols.values()))
            if not (col.lstrip("-").isdigit() and -v.shape[1] <= int(col) < v.shape[1]):
                raise ImportProblem("{}: --columns {}: a channel index 0..{}".format(path, col, v.shape[1] - 1))
            v = v[:, [int(col)]]
        else:
            notes.append("{}: {} channels mixed to one (--columns N picks channel N)".format(rel, v.shape[1]))
            v = v.mean(axis=1, keepdims=True)
    p = _Piece(v, None, float(rate), label, group, name)
    p.channels = ["pcm"]
    return _segments(p, sidecar, path)


def _convert_sound(pieces, opt, rel, warnings):
    """(int16 samples x 1 of all pieces of one sound file at ``opt.to_rate``, its sidecar) or None."""
    parts, segs, start, clipped = [], [], 0, 0
    src_rates = set()
    for p in pieces:
        if p.label is None:
            raise ImportProblem("{}: no label: give --label NAME, --label-from folder|name, --label-pattern REGEX "
                                "or a .json sidecar with \"label\"".format(rel))
        if len(p.values) < 2:
            continue
        src_rates.add(round(p.rate, 2))
        clipped += int((np.abs(p.values[:, 0]) >= 32767).sum())
        x = resample(p.values, None, p.rate, opt.to_rate)
        x = np.clip(np.round(x), -32768, 32767).astype("<i2")
        if not len(x):
            continue
        parts.append(x)
        segs.append({"start": start, "frames": len(x), "label": str(p.label), "group": str(p.group), "name": p.name,
                     "t0_ms": p.t0_ms})
        start += len(x)
    if not parts:
        return None
    frames = np.ascontiguousarray(np.concatenate(parts))
    if not frames.any():
        warnings.append("{}: silent (every sample 0)".format(rel))
    low = [r for r in src_rates if r < opt.to_rate]
    if low:
        warnings.append("{}: recorded at {:g} Hz: nothing above {:g} Hz was measured, so the mel bands above it "
                        "hold only interpolation".format(rel, min(low), min(low) / 2))
    side = {"format": 1, "sensor": "sound", "rate_hz": opt.to_rate, "columns": ["pcm"],
            "source_rate_hz": sorted(src_rates)[0] if len(src_rates) == 1 else sorted(src_rates),
            "clipped_frames": clipped, "gaps": 0, "segments": segs}
    return frames, side


def _numeric(dt, path, what):
    if dt.kind not in "biuf" or dt.shape:
        raise ImportProblem("{}: {} is of type {}, not numbers".format(path, what, dt))


def _default_map(n, path, names=None):
    if n not in (1, 3, 6):
        raise ImportProblem("{}: {} channels{}; give --columns to say which are the accelerometer (1 or 3) and "
                            "the gyroscope".format(path, n, " ({})".format(", ".join(names)) if names else ""))
    return {c: i for i, c in enumerate(CHANNELS[:n])}


def _check_sidecar(d, side):
    """Refuse a sidecar whose fields have the wrong type (the format: docs/datasets.md)."""
    if not isinstance(d, dict):
        raise ImportProblem("{}: a sidecar is a JSON object (rate_hz, label, group, segments)".format(side))
    r = d.get("rate_hz")
    if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < math.inf):
        raise ImportProblem("{}: rate_hz must be a number > 0, not {!r}".format(side, r))
    segs = d.get("segments")
    if segs is not None and not (isinstance(segs, list) and all(isinstance(x, dict) for x in segs)):
        raise ImportProblem("{}: segments must be a list of objects (start, frames, label)".format(side))


def _segments(p, sidecar, path):
    """Pieces of a file with a sidecar listing labelled segments (start, frames in input rows), else one."""
    segs = (sidecar or {}).get("segments")
    if not segs:
        return [p]
    out = []
    for i, s in enumerate(segs):
        try:
            a, n = int(s["start"]), int(s["frames"])
            if a < 0 or n < 0:
                raise ValueError
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ImportProblem("{}: segment {} needs start and frames (rows)".format(path, i))
        q = _Piece(p.values[a:a + n], None if p.t is None else p.t[a:a + n] - p.t[a], p.rate,
                   str(s.get("label", p.label)), str(s.get("group", s.get("subject", p.group))),
                   "{}#{}".format(p.name, i), p.t0_ms)
        q.channels = p.channels
        q.units = p.units
        out.append(q)
    return out


def _split_rows(p, keep, labels, groups):
    """Cut a file's rows where the label or group changes or a row is dropped."""
    n = len(p.values)
    key = np.zeros(n, dtype=np.int64)
    if labels is not None or groups is not None:
        pairs = list(zip(labels if labels is not None else [None] * n, groups if groups is not None else [None] * n))
        codes = {}
        key = np.array([codes.setdefault(x, len(codes)) for x in pairs])
    cut = np.ones(n, dtype=bool)
    cut[1:] = (key[1:] != key[:-1]) | ~keep[:-1] | ~keep[1:]
    starts = np.flatnonzero(cut & keep)
    out = []
    for k, a in enumerate(starts):
        b = a + 1
        while b < n and keep[b] and not cut[b]:
            b += 1
        q = _Piece(p.values[a:b], None if p.t is None else p.t[a:b] - p.t[a], p.rate,
                   labels[a] if labels is not None else p.label,
                   groups[a] if groups is not None else p.group,
                   "{}#{}".format(p.name, k) if len(starts) > 1 else p.name,
                   None if p.t0_ms is None or p.t is None else p.t0_ms + int(round(p.t[a] * 1000)))
        q.channels = p.channels
        q.units = p.units
        out.append(q)
    return out


# --- resampling and conversion ------------------------------------------------------------------------------------

def lowpass(x, rate, cutoff):
    """``x`` (rows x channels) through a linear-phase low-pass FIR (Hamming-windowed sinc) at ``cutoff`` Hz,
    edges padded by reflection."""
    width = 0.1 * cutoff  # transition band
    taps = int(3.3 * rate / width) | 1
    taps = min(taps, 2 * (len(x) // 2) - 1) if len(x) > 3 else 1
    if taps < 3:
        return x
    m = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff / rate * m) * np.hamming(taps)
    h /= h.sum()
    pad = taps // 2
    xp = np.pad(x, ((pad, pad), (0, 0)), mode="reflect")
    return np.stack([np.convolve(xp[:, c], h, mode="valid") for c in range(x.shape[1])], axis=1)


def resample(values, t, rate, to_rate):
    """``values`` (rows x channels) at times ``t`` (seconds; None: uniform at ``rate``) onto a uniform grid at
    ``to_rate``. Slowing down filters first (cut-off 0.45 x the new rate)."""
    if t is None:
        t = np.arange(len(values)) / rate
    if len(values) < 2:
        return values[:0]
    src = rate or 1.0 / float(np.median(np.diff(t)))
    x = values
    if to_rate < 0.98 * src:
        x = lowpass(x, src, 0.45 * to_rate)
    if abs(to_rate - src) <= 1e-9 * src and len(t) == len(x):
        return x
    grid = np.arange(0.0, t[-1] + 0.5 / src, 1.0 / to_rate)
    grid = grid[grid <= t[-1] + 1e-9]
    return np.stack([np.interp(grid, t, x[:, c]) for c in range(x.shape[1])], axis=1)


def _split_gaps(p):
    """Pieces of ``p`` cut where its time column jumps (> _GAP periods) or goes back; (pieces, gaps cut)."""
    if p.t is None or len(p.t) < 3:
        return [p], 0
    dt = np.diff(p.t)
    period = float(np.median(dt[dt > 0])) if (dt > 0).any() else 0.0
    if not period:
        return [p], 0
    bad = np.flatnonzero((dt > _GAP * period) | (dt <= 0))
    if not len(bad):
        return [p], 0
    out = []
    for a, b in zip(np.concatenate([[0], bad + 1]), np.append(bad + 1, len(p.t))):
        q = _Piece(p.values[a:b], p.t[a:b] - p.t[a], p.rate, p.label, p.group, "{}+{}".format(p.name, a),
                   None if p.t0_ms is None else p.t0_ms + int(round(p.t[a] * 1000)))
        q.channels = p.channels
        q.units = p.units
        out.append(q)
    return out, len(bad)


# --- the whole import -------------------------------------------------------------------------------------------

def input_files(sources):
    """(path, path relative to its source) of every importable file in ``sources`` (files or folders)."""
    out = []
    for src in sources:
        if os.path.isdir(src):
            for root, dirs, files in os.walk(src):
                dirs.sort()
                for f in sorted(files):
                    if f.lower().endswith(EXTENSIONS) and not f.startswith("."):
                        p = os.path.join(root, f)
                        out.append((p, os.path.relpath(p, src)))
        elif os.path.isfile(src):
            out.append((src, os.path.basename(src)))
        else:
            raise ImportProblem("{}: no such file or folder".format(src))
    if not out:
        raise ImportProblem("no files to import in {} (looked for {})".format(", ".join(sources),
                                                                            ", ".join(EXTENSIONS)))
    return out


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.#+-]", "_", name.replace(os.sep, "__").replace("/", "__"))


def _within(path, folder):
    """True when ``path`` is ``folder`` or lies inside it (links resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_out(sources, out_dir):
    """Refuse an ``out_dir`` that an import would read back or delete sources from."""
    for src in sources:
        if os.path.isdir(src) and _within(out_dir, src):
            raise ImportProblem("--out {} {} the source folder {}: the import would read its own output; choose an "
                                "--out outside the sources".format(
                                    out_dir, "is" if _within(src, out_dir) else "is inside", src))
        if _within(src, out_dir):
            raise ImportProblem("the source {} is inside --out {}: choose an --out that holds no sources"
                                .format(src, out_dir))


def _previous(out_dir):
    """The files an earlier import wrote into ``out_dir``, as its dataset.json lists them (plain names only)."""
    try:
        with open(os.path.join(out_dir, "dataset.json")) as f:
            names = json.load(f).get("outputs")
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and n == os.path.basename(n) and n.endswith((".npy", ".json"))
            and n != "dataset.json" and not n.startswith(".")}


def import_recordings(sources, out_dir, progress=None, force=False, **kw):
    """Import ``sources`` (files or folders) into the dataset folder ``out_dir``. Keyword arguments as
    ``Options`` (rate, to_rate, columns, units, gyro_units, lsb_per_g, lsb_per_dps, time_column, time_unit,
    label_column, label, label_from, label_pattern, group_column, group, group_from, group_pattern). Returns a
    summary dict (also written to ``out_dir/dataset.json``) with counts, ``warnings`` and ``outputs`` (the files
    written). ``force`` replaces the files an earlier import listed there; nothing else in ``out_dir`` is deleted,
    and nothing changes there until the whole import has succeeded."""
    if isinstance(sources, str):
        sources = [sources]
    opt = Options(**kw)
    files = input_files(sources)
    _check_out(sources, out_dir)
    old = _previous(out_dir)
    present = sorted(f for f in os.listdir(out_dir) if f.endswith(".npy")) if os.path.isdir(out_dir) else []
    if present and not force:
        raise ImportProblem("{} already holds recordings: choose another --out, or --force to replace its files"
                            .format(out_dir))
    strays = [f for f in present if f not in old]
    if strays:
        raise ImportProblem("{} holds recordings that no earlier import listed in its dataset.json ({}): --force "
                            "replaces only those; choose another --out or move them".format(
                                out_dir, ", ".join(strays[:5]) + (", ..." if len(strays) > 5 else "")))
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".import-", dir=out_dir)
    try:
        summary = _import(sources, files, tmp, opt, progress)
        for f in old - set(summary["outputs"]):
            if os.path.exists(os.path.join(out_dir, f)):
                os.remove(os.path.join(out_dir, f))
        for f in summary["outputs"] + ["dataset.json"]:
            os.replace(os.path.join(tmp, f), os.path.join(out_dir, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _import(sources, files, out_dir, opt, progress):
    notes, warnings = [], []
    summary = {"format": 1, "sensor": opt.sensor, "sources": [os.path.abspath(s) for s in sources],
               "rate_hz": opt.to_rate,
               "options": {k: v for k, v in vars(opt).items() if v is not None}, "files": 0, "recordings": 0,
               "frames": 0, "classes": {}, "short": {"recordings": 0, "per_class": {}}, "clipped_frames": 0,
               "gaps": 0, "outputs": []}
    used = {"dataset"}  # dataset.json is the summary
    for n_done, (path, rel) in enumerate(files):
        pieces = _read_file(path, rel, opt, notes)
        res = (_convert_sound if opt.sensor == "sound" else _convert)(pieces, opt, rel, warnings)
        if res is None:
            notes.append("{}: nothing to import".format(rel))
            continue
        frames, side = res
        name = _safe(os.path.splitext(rel)[0])
        base, k = name, 2
        while name in used:
            name = "{}-{}".format(base, k)
            k += 1
        used.add(name)
        side["source"] = os.path.realpath(path)  # (a link: what it points to)
        np.save(os.path.join(out_dir, name + ".npy"), frames)
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(side, f, indent=1)
        summary["outputs"] += [name + ".npy", name + ".json"]
        summary["files"] += 1
        summary["frames"] += len(frames)
        summary["clipped_frames"] += side["clipped_frames"]
        summary["gaps"] += side["gaps"]
        for s in side["segments"]:
            summary["recordings"] += 1
            c = summary["classes"].setdefault(s["label"], {"recordings": 0, "frames": 0})
            c["recordings"] += 1
            c["frames"] += s["frames"]
            if s["frames"] < opt.window:
                summary["short"]["recordings"] += 1
                summary["short"]["per_class"][s["label"]] = summary["short"]["per_class"].get(s["label"], 0) + 1
        if progress:
            progress(n_done + 1, len(files))
    if not summary["recordings"]:
        raise ImportProblem("nothing was imported from {}: {}".format(", ".join(sources), "; ".join(notes[-5:])))
    sh = summary["short"]
    if sh["recordings"]:
        lost = [c for c, n in sh["per_class"].items() if n == summary["classes"][c]["recordings"]]
        warnings.append("{} of {} recordings are shorter than one analysis window ({} frames, {:.2f} s at {:g} Hz) "
                        "and give no training windows ({}){}".format(
                            sh["recordings"], summary["recordings"], opt.window, opt.window / opt.to_rate,
                            opt.to_rate, ", ".join("{}: {}".format(c, n) for c, n in sorted(sh["per_class"].items())),
                            "; classes with no recording long enough: {}".format(", ".join(sorted(lost)))
                            if lost else ""))
    if summary["clipped_frames"] and opt.sensor == "sound":
        warnings.append("{} samples are at full scale: clipped when they were recorded?".format(
            summary["clipped_frames"]))
    elif summary["clipped_frames"]:
        warnings.append("{} input rows had values beyond the device's range (accelerometer ±8 g, gyroscope ±2000 "
                        "dps): clipped to it".format(summary["clipped_frames"]))
    summary["warnings"] = _dedupe(warnings)
    summary["notes"] = notes
    with open(os.path.join(out_dir, "dataset.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def _dedupe(items):
    out = []
    for w in items:
        if w not in out:
            out.append(w)
    return out


def _convert(pieces, opt, rel, warnings):
    """(int16 frames of all pieces of one file, its sidecar dict) or None."""
    if not pieces:
        return None
    chans = pieces[0].channels
    units = opt.units or getattr(pieces[0], "units", None) or "g"
    scale = opt.scale(chans, units)
    parts, segs, start, clipped, gaps = [], [], 0, 0, 0
    src_rates = set()
    for p0 in pieces:
        if p0.label is None:
            raise ImportProblem("{}: no label: give --label-column COLUMN, --label NAME, --label-from folder|name, "
                                "--label-pattern REGEX or a .json sidecar with \"label\"".format(rel))
        split, g = _split_gaps(p0)
        gaps += g
        for p in split:
            if len(p.values) < 2:
                continue
            src = p.rate or 1.0 / float(np.median(np.diff(p.t)))
            if p.rate and p.t is not None:
                dt = float(np.median(np.diff(p.t)))
                if dt > 0 and abs(1.0 / dt - p.rate) > 0.02 * p.rate:
                    warnings.append("{}: --rate {:g} Hz, but its time column says {:.1f} Hz: using {:g} Hz".format(
                        rel, p.rate, 1.0 / dt, p.rate))
                p.t = None
            src_rates.add(round(src, 2))
            lim = 32767 / scale
            clipped += int((np.abs(p.values) > lim).any(axis=1).sum())  # input rows beyond the range
            # values far beyond the range are cut first (to 2x it), so filtering cannot overflow
            x = resample(np.clip(p.values, -2 * lim, 2 * lim), p.t, p.rate, opt.to_rate) * scale
            x = np.clip(np.round(x), -32768, 32767).astype("<i2")
            if not len(x):
                continue
            parts.append(x)
            segs.append({"start": start, "frames": len(x), "label": str(p.label), "group": str(p.group),
                         "name": p.name, "t0_ms": p.t0_ms})
            start += len(x)
    if not parts:
        return None
    frames = np.concatenate(parts)
    # device channels: 3 accelerometer axes (absent ones 0), + 3 gyroscope axes when any was given
    n_out = 6 if any(c[0] == "g" for c in chans) else 3
    out = np.zeros((len(frames), n_out), dtype="<i2")
    for i, c in enumerate(chans):
        out[:, CHANNELS.index(c)] = frames[:, i]
    accel = [c for c in chans if c[0] == "a"]
    gravity = _check(out, chans, parts, scale, rel, opt, warnings, src_rates, units)
    side = {"format": 1, "rate_hz": opt.to_rate, "columns": list(CHANNELS[:n_out]), "measured": list(chans),
            "accel_lsb_per_g": datasets.ACCEL_LSB_PER_G, "gyro_lsb_per_dps": datasets.GYRO_LSB_PER_DPS,
            "source_rate_hz": sorted(src_rates)[0] if len(src_rates) == 1 else sorted(src_rates),
            "gravity": gravity, "single_axis": len(accel) == 1, "clipped_frames": clipped, "gaps": gaps,
            "segments": segs}
    return np.ascontiguousarray(out), side


def _check(out, chans, parts, scale, rel, opt, warnings, src_rates, units_used):
    """Warnings about gravity, units, clipping at the source and low rates; returns whether gravity is present
    (None when it cannot be told: fewer than 3 accelerometer axes)."""
    lsb = datasets.ACCEL_LSB_PER_G
    gravity = None
    if all(c in chans for c in ("ax", "ay", "az")):
        # gravity is what stays when the acceleration is averaged: the median, over stretches of one analysis
        # window, of the length of the mean acceleration vector is about 1 g with gravity and about 0 without
        a = out[:, :3].astype(np.float64) / lsb
        n = max(1, len(a) // opt.window)
        m = a[:n * opt.window].reshape(n, -1, 3).mean(axis=1) if len(a) >= opt.window else a.mean(axis=0)[None]
        med = float(np.median(np.sqrt((m ** 2).sum(axis=1))))
        gravity = med > 0.5
        if med < 0.3:
            warnings.append("{}: the accelerometer's mean over {} frames is {:.2f} g long (median): gravity seems "
                            "removed (a device always measures 1 g of it). The grav_* and magnitude features will "
                            "differ from a device's: a model trained on this data will not transfer to a device"
                            .format(rel, opt.window, med))
        elif not 0.6 <= med <= 1.6:
            units = units_used
            raw = med * opt.lsb_per_g / lsb if units == "counts" else med / ACCEL_UNITS[units]  # in input units
            guess = next((u for u, lo, hi in (("g", 0.6, 1.6), ("m/s2", 7, 12), ("mg", 600, 1600))
                          if lo <= raw <= hi and u != units), None)
            warnings.append("{}: the accelerometer's gravity (its mean over {} frames) is {:.2f} g long, not about "
                            "1 g: are --units {} right?{}".format(rel, opt.window, med, units,
                                                                 " (it looks like --units {})".format(guess)
                                                                 if guess else ""))
    elif len([c for c in chans if c[0] == "a"]) == 1:
        warnings.append("{}: one accelerometer axis: written as {} with the other axes 0; the model learns that "
                        "axis's features only, and a device must be mounted the same way".format(
                            rel, next(c for c in chans if c[0] == "a")))
    # a sensor that saturated before it was recorded: flat tops (runs of equal samples) at the input's extreme,
    # far out (>= 1.9 g, >= 240 dps: near a full scale), again and again
    x = np.concatenate(parts).astype(np.float64)
    for i, c in enumerate(chans):
        col = x[:, i]
        far = (1.9 * lsb) if c[0] == "a" else (240 * datasets.GYRO_LSB_PER_DPS)
        for v in (col.max(), col.min()):
            at = col == v
            runs = int((at[1:] & at[:-1] & ~np.concatenate([[False], at[:-2]])).sum())
            if abs(v) >= far and runs >= 3:
                warnings.append("{}: {} is stuck at {:g} {} in {} flat stretches ({} frames): clipped at the "
                                "source?".format(rel, c, v / (lsb if c[0] == "a" else datasets.GYRO_LSB_PER_DPS),
                                                 "g" if c[0] == "a" else "dps", runs, int(at.sum())))
    low = [r for r in src_rates if r < 2 * 10.0]
    if low and opt.to_rate > min(low):
        warnings.append("{}: recorded at {:g} Hz: nothing above {:g} Hz was measured, so band features above it "
                        "(e3: 5-10 Hz, e4: 10-25 Hz) hold only interpolation".format(
                            rel, min(low), min(low) / 2))
    return gravity


# --- command line -------------------------------------------------------------------------------------------------

EPILOG = """examples:
  sensorbox import phone/*.csv --out data/phone --units m/s2 --label-from folder
      CSV files with a time column (rate detected) and columns like acc_x, acc_y, acc_z (detected)
  sensorbox import log.csv --out data/log --label-column activity --group-column subject --columns ax,ay,az
  sensorbox import recs/ --out data/recs --rate 100 --columns 0,1,2 --units counts --lsb-per-g 16384
      a folder of .npy (frames x channels) or WAV files, labels from the folder names (recs/walk/*.npy)
  sensorbox import BasicMotions_TRAIN.ts --out data/bm-train --rate 10 --units m/s2 --gyro-units rad/s
      UEA/UCR .ts files (sktime, aeon): one recording per case, its class as the label
  sensorbox import vertical.csv --out data/v --rate 64 --columns az=vert --units mg --label walk
  sensorbox import sounds/ --sensor sound --out data/sounds --label-from folder
      WAV files of any rate and depth (sounds/knock/*.wav, sounds/dog/*.wav) as 16 kHz mono 16-bit PCM

Writes OUT/<name>.npy (int16 frames x channels: accelerometer 4096 counts per g, gyroscope 16.4 per dps, at
--to-rate, default 50 Hz) and OUT/<name>.json (rate, channels, source, labelled segments), plus OUT/dataset.json
(what was imported, counts, warnings). Then: sensorbox train OUT --out MODEL_DIR. The format is described field
by field in docs/datasets.md.
"""


def cmd_import(args):
    from sensorbox.host import train

    kw = {k: getattr(args, k) for k in ("rate", "to_rate", "columns", "units", "gyro_units", "lsb_per_g",
                                        "lsb_per_dps", "time_column", "time_unit", "label_column", "label",
                                        "label_from", "label_pattern", "group_column", "group", "group_from",
                                        "group_pattern", "sensor")}
    try:
        s = import_recordings(args.sources, args.out, progress=None if args.quiet else train._bar("import"),
                              force=args.force, **kw)
    except datasets.DatasetError as e:
        sys.exit("error: {}".format(e))
    except ModuleNotFoundError as e:
        sys.exit("error: sensorbox import needs {}: pip install -e . (pandas)".format(e.name))
    for n in s["notes"]:
        print("note: " + n, file=sys.stderr)
    for w in s["warnings"]:
        print("WARNING: " + w, file=sys.stderr)
    print("imported {} files: {} recordings, {} {} ({:.1f} min) at {:g} Hz into {}".format(
        s["files"], s["recordings"], s["frames"], "samples" if args.sensor == "sound" else "frames",
        s["frames"] / s["rate_hz"] / 60, s["rate_hz"], args.out))
    w = max([5] + [len(c) for c in s["classes"]])
    print("{:<{w}}  recordings  seconds  shorter than a window".format("class", w=w))
    for c, v in sorted(s["classes"].items()):
        print("{:<{w}}  {:10d}  {:7.1f}  {:>21}".format(c, v["recordings"], v["frames"] / s["rate_hz"],
                                                         s["short"]["per_class"].get(c, 0), w=w))
    print("next: sensorbox train {} --out MODEL_DIR{}".format(args.out, " --sensor sound" if args.sensor == "sound"
                                                                            else ""))
    return 0


def add_parser(sub):
    import argparse

    p = sub.add_parser("import", help="convert recordings (CSV, .npy, WAV, .ts) into a dataset folder for train",
                       description="Convert recordings into sensorbox's dataset folder format: resampled to a device "
                                   "rate, in the device's int16 counts, labelled.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", metavar="SOURCE", nargs="+", help="files (.csv .tsv .txt .npy .wav .ts) or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder to write")
    p.add_argument("--force", action="store_true", help="replace the files an earlier import wrote to --out (its dataset.json lists them)")
    p.add_argument("--sensor", choices=SENSORS, default="accel",
                   help="accel (default): accelerometer recordings; sound: WAV files (or .npy samples) as 16-bit "
                        "mono PCM at --to-rate 16000 (or 8000), what a device's microphone gives")
    g = p.add_argument_group("rate")
    g.add_argument("--rate", type=float, metavar="HZ",
                   help="the inputs' sample rate (default: from a time column, the WAV header or a sidecar)")
    g.add_argument("--to-rate", type=float, default=feat.RATE_HZ, metavar="HZ",
                   help="the device rate to resample to (default %(default)s; a device samples at 25, 50 or 100 Hz)")
    g.add_argument("--time-column", metavar="NAME", help="the time column (default: detected: t, time, timestamp...)")
    g.add_argument("--time-unit", choices=("s", "ms", "us", "ns", "datetime"),
                   help="unit of the time column (default: guessed from its steps; the guess is printed)")
    g = p.add_argument_group("channels and units")
    g.add_argument("--columns", metavar="LIST",
                   help="input columns in the order ax,ay,az[,gx,gy,gz] (names or 0-based indices; 1, 3 or 6), or "
                        "named: az=vertical (default: detected from names like acc_x, else the 1, 3 or 6 numeric "
                        "columns in order)")
    g.add_argument("--units", choices=sorted(ACCEL_UNITS),
                   help="accelerometer units (default g; for integer WAV files counts: raw sensor counts, see "
                        "--lsb-per-g)")
    g.add_argument("--gyro-units", choices=sorted(GYRO_UNITS), default="dps", help="gyroscope units (default dps)")
    g.add_argument("--lsb-per-g", type=float, default=datasets.ACCEL_LSB_PER_G,
                   help="with --units counts: counts per g of the input (default %(default)s)")
    g.add_argument("--lsb-per-dps", type=float, default=datasets.GYRO_LSB_PER_DPS,
                   help="with --gyro-units counts: counts per dps of the input (default %(default)s)")
    g = p.add_argument_group("labels and groups (a group is kept together in cross-validation: a subject, a session)")
    g.add_argument("--label-column", metavar="NAME", help="a column holding each row's label (rows without one are "
                                                          "left out)")
    g.add_argument("--label", metavar="NAME", help="one label for everything imported")
    g.add_argument("--label-from", choices=("folder", "name"), help="the label is the file's folder or file name")
    g.add_argument("--label-pattern", metavar="REGEX", help="the label is the first (group) of REGEX in the path")
    g.add_argument("--group-column", metavar="NAME", help="a column holding each row's group (e.g. subject)")
    g.add_argument("--group", metavar="NAME", help="one group for everything imported")
    g.add_argument("--group-from", choices=("folder", "name"),
                   help="the group is the file's folder or file name (default: its path, so each file is a group)")
    g.add_argument("--group-pattern", metavar="REGEX", help="the group is the first (group) of REGEX in the path, "
                                                            r"e.g. 'subject(\d+)'")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import)
