"""``sensorbox pull``: download a device's stored data into files numpy and pandas read directly, incrementally.

Layout of ``--out DIR`` (one folder per device, named by its id)::

    DIR/<device id>/manifest.json     device id, URL, schemas, per resource: rows, time range, next ``since``
    DIR/<device id>/accel.npy         structured array (t int64 epoch ms, x, y, z int16): np.load, pd.DataFrame
    DIR/<device id>/features.npy      ... one .npy per numeric resource, grown on each pull
    DIR/<device id>/events.jsonl      one JSON object per line (pd.read_json(path, lines=True))
    DIR/<device id>/labels.csv        the device's labels (start, end, label), replaced on each pull

Each pull asks the device only for rows newer than the last one it has (``since``, kept in the manifest), so a
second pull downloads only what is new. A numeric resource whose columns changed (another feature set) starts a
new file, ``<name>.1.npy``, and so on. The device stores its data coded (compressed); what comes out of its
export, and so these files, are the rows as they were measured. The rollups (``soundlevel_1m``, ``_1h``,
``predictions_1m``, ``_1h``: per-minute and per-hour summaries the device keeps far longer) are pulled like any
numeric resource.

Labelled data is pinned on the device (kept from retention) until it has been pulled: after a pull, ``pull`` tells
the device how far each resource was fetched (``POST /api/pulled``), which releases the labels it covers; the
manifest's ``pins`` records the labels released and those still pinned. That needs the admin password or an admin
token: with a read token the data is pulled and the pins stay (said so).
"""

import io
import json
import os
import sys
import time
import urllib.parse

import numpy as np

from sensorbox.host import client

EPILOG = """examples:
  sensorbox pull http://127.0.0.1:8080 --out data/           everything, first time; later runs fetch what is new
  sensorbox pull http://sensorbox.local --out data/ --since 2h   only the last two hours (on a first pull)
  sensorbox pull http://10.0.0.7 --out data/ --resources accel,labels --since 2025-03-01T08:00
  SENSORBOX_PASSWORD=secret sensorbox pull http://10.0.0.7 --out data/
  SENSORBOX_TOKEN=sb_3_... sensorbox pull http://10.0.0.7 --out data/   an API token (a read token is enough)

then, in Python:
  import numpy as np, pandas as pd
  a = np.load("data/<device id>/accel.npy");  df = pd.DataFrame(a)   # columns t, x, y, z
"""

_UNITS = {"s": 1000, "m": 60000, "h": 3600000, "d": 86400000}


PullError = client.DeviceError
Progress = client.Progress


def parse_since(text, now_ms):
    """Epoch ms from ``--since``: epoch ms, a duration before now (``90s``, ``15m``, ``2h``, ``7d``) or an ISO
    8601 date/time (UTC unless it carries an offset)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        v = int(text)
        return v + now_ms if v < 0 else v
    if text[-1:] in _UNITS and text[:-1].replace(".", "", 1).isdigit():
        return int(now_ms - float(text[:-1]) * _UNITS[text[-1]])
    from datetime import datetime, timezone

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise PullError("--since {!r}: expected epoch ms, a duration like 2h or 7d, or an ISO date".format(text))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def _download(dev, path, name, expect_bytes, progress):
    bar = Progress(name, expect_bytes, force=progress)
    buf = io.BytesIO()
    with dev.open(path) as r:
        headers = dict(r.headers)
        while True:
            chunk = r.read(16384)
            if not chunk:
                break
            buf.write(chunk)
            bar.add(len(chunk))
    bar.close()
    return buf.getvalue(), headers


def _append_npy(folder, name, arr):
    """Append rows to <name>.npy (a new numbered file when the columns differ). Returns the file name."""
    k = 0
    while True:
        fname = "{}.npy".format(name) if k == 0 else "{}.{}.npy".format(name, k)
        path = os.path.join(folder, fname)
        if not os.path.exists(path):
            break
        old = np.load(path)
        nxt = "{}.{}.npy".format(name, k + 1)
        if old.dtype == arr.dtype and not os.path.exists(os.path.join(folder, nxt)):
            arr = np.concatenate([old, arr])
            break
        k += 1
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)
    return fname


def pull(url, out, user="admin", password=None, since=None, resources=None, progress=False, log=print, token=None,
         ask=False):
    """Pull every resource (or ``resources``) of the device at ``url`` into ``out/<device id>/``. Returns the
    manifest. Credentials: ``token`` (an API token, read scope is enough) or ``password``, else as
    ``client.Client`` finds them ($SENSORBOX_TOKEN, $SENSORBOX_PASSWORD; ``ask``: a prompt)."""
    dev = client.Client(url, password, token, user, ask=ask)
    info = dev.json("/api/resources")
    dev_id = str(info["device"])
    if not dev_id or "/" in dev_id or dev_id.startswith("."):
        raise PullError("the device reported an unusable id {!r}".format(dev_id))
    folder = os.path.join(out, dev_id)
    os.makedirs(folder, exist_ok=True)
    mpath = os.path.join(folder, "manifest.json")
    manifest = {"device": dev_id, "resources": {}}
    if os.path.exists(mpath):
        with open(mpath) as f:
            manifest = json.load(f)
    manifest.update({"device": dev_id, "url": dev.url, "pulled_at_ms": int(time.time() * 1000),
                     "device_time_ms": info.get("time_ms")})
    since_ms = parse_since(since, info.get("time_ms") or int(time.time() * 1000)) if since else None
    if resources:
        unknown = [r for r in resources if r not in [x["name"] for x in info["resources"]]]
        if unknown:
            raise PullError("no resource {} on this device; it has: {}".format(
                ", ".join(unknown), ", ".join(x["name"] for x in info["resources"])))
    for res in info["resources"]:
        name = res["name"]
        if resources and name not in resources:
            continue
        m = manifest["resources"].setdefault(name, {})
        m["schema"] = {k: res.get(k) for k in ("columns", "dtype", "rate_hz", "formats")}
        m["device_range"] = [res.get("start"), res.get("end")]
        if name == "labels":
            body, _ = _download(dev, "/api/resources/labels/data?format=csv", name, None, progress)
            with open(os.path.join(folder, "labels.csv"), "wb") as f:
                f.write(body)
            m["file"] = "labels.csv"
            m["rows"] = max(body.count(b"\n") - 1, 0)
            log("{}: {} labels".format(name, m["rows"]))
            continue
        q = {}
        nxt = m.get("next")
        if nxt is not None:
            q["since"] = str(nxt)
        elif since_ms is not None:
            q["start"] = str(since_ms)
        if "npy" in res.get("formats", []):
            q["format"] = "npy"
            rowbytes = 8 + 2 * (len(res["columns"]) - 1)
            span = (res.get("end") or 0) - int(q.get("since", q.get("start", res.get("start") or 0)))
            expect = int(max(span, 0) * (res.get("rate_hz") or 0) / 1000 * rowbytes) or None
            body, headers = _download(dev, "/api/resources/{}/data?{}".format(name, urllib.parse.urlencode(q)),
                                      name, expect, progress)
            arr = np.load(io.BytesIO(body))
            if len(arr):
                m["file"] = _append_npy(folder, name, arr)
                m["next"] = int(arr["t"][-1])
                m["start"] = m.get("start") or int(arr["t"][0])
                m["end"] = int(arr["t"][-1])
                m["rows"] = m.get("rows", 0) + len(arr)
            log("{}: {} new rows{}".format(name, len(arr), " -> " + m["file"] if len(arr) else ""))
        else:
            q["format"] = "json"
            body, _ = _download(dev, "/api/resources/{}/data?{}".format(name, urllib.parse.urlencode(q)),
                                name, None, progress)
            rows = json.loads(body)
            if rows:
                fname = name + ".jsonl"
                with open(os.path.join(folder, fname), "a") as f:
                    for row in rows:
                        f.write(json.dumps(row, sort_keys=True) + "\n")
                m["file"] = fname
                m["next"] = max(r["t"] for r in rows)
                m["start"] = m.get("start") or min(r["t"] for r in rows)
                m["end"] = m["next"]
                m["rows"] = m.get("rows", 0) + len(rows)
            log("{}: {} new rows".format(name, len(rows)))
        # Saved after every resource: an interrupted pull resumes where it stopped.
        _save(mpath, manifest)
    _release(dev, info, manifest, log)
    _save(mpath, manifest)
    return manifest


def _release(dev, info, manifest, log):
    """Tell the device how far each full-resolution resource has been pulled: the labelled data those rows cover
    is no longer pinned there. A failure here leaves the pull as it is (the data is on the host): it is said."""
    done = {}
    for res in info["resources"]:
        m = manifest["resources"].get(res["name"]) or {}
        if res["name"] != "labels" and not res.get("period_ms") and m.get("next") is not None:
            done[res["name"]] = int(m["next"])
    if not done:
        return
    try:
        got = dev.json("/api/pulled", "POST", json.dumps(done).encode())
    except PullError as e:
        if "HTTP 403" in str(e):
            log("labelled data stays pinned on the device: releasing it needs the admin password or an admin token "
                "(a read token may only pull)")
        elif "HTTP 404" in str(e):
            pass  # a device of an earlier version: no pins
        else:
            log("the device was not told what was pulled ({}); its labelled data stays pinned until the next "
                "pull".format(e))
        return
    pins = manifest.setdefault("pins", {"released": []})
    pins["released"] = sorted(set(pins.get("released", [])) | set(got.get("released", [])))
    pins["pinned"] = got.get("pinned", [])
    pins["pulled_until"] = done
    if got.get("released"):
        log("labels {} released on the device (their data is here now)".format(
            ", ".join(str(i) for i in got["released"])))


def _save(path, manifest):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def add_parser(sub):
    import argparse

    p = sub.add_parser("pull", help="download a device's stored data (incrementally) into .npy/.jsonl files",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", metavar="URL", help="the device, e.g. http://127.0.0.1:8080")
    p.add_argument("--out", required=True, help="folder to pull into (a sub-folder per device id)")
    p.add_argument("--since", help="on a first pull: start at epoch ms, a duration ago (2h, 7d) or an ISO time")
    p.add_argument("--resources", help="comma-separated resources (default: all)")
    p.add_argument("--user", default="admin", help=argparse.SUPPRESS)  # the device has one user, admin
    client.add_credential_args(p, "read")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_pull)
    return p


def cmd_pull(args):
    try:
        m = pull(args.url, args.out, args.user, args.password, args.since,
                 args.resources.split(",") if args.resources else None, progress=False if args.no_progress else None,
                 token=args.token, ask=True)
    except PullError as e:
        sys.exit("error: {}".format(e))
    print("pulled into {}".format(os.path.join(args.out, m["device"])))
    return 0
