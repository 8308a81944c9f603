"""Reading, checking and saving ``config.json``: the parts of ``config.Config`` that need the schema, loaded
together with it only while they run (at boot and for an update; see ``config`` and ``lazy``). An update's checks
against what runs (the model, the store, the simulated microphone): ``config_running``, loaded only when one of its
keys changes. ``GET /api/config`` needs none of them: ``http/api.py`` streams it from the values."""

import binascii
import json
import os

from sensorbox.device import lazy
from sensorbox.shared import config_schema as schema

# the keys whose change config_running checks against what runs (loaded only then)
_RUNNING = ("sim.mic_wav", "mic.rate_hz", "store.min_free_kb", "ml.window", "accel.gyro", "ml.model_max_kb")


def load(cfg):
    """The values in ``cfg.path``, validated; the defaults when it is missing. A file that does not parse is
    moved aside to ``.bad`` and the device starts on defaults. A file with keys that do not validate (a value out
    of a range that a new version narrowed, a key it no longer knows) keeps every other key: the bad ones are
    reset to their defaults, the file as it was is kept as ``.bad`` and the repaired one saved. Either way the
    log and ``cfg.boot_error`` say what happened. Whatever the file holds (bytes that are not UTF-8, a directory
    in its place), the device starts."""
    text = lazy.call("sensorbox.device.files", "read", cfg.path, cfg.log, 65536)  # (not imported: an update
    # would load it too, ~4 KB more at its peak)
    if text is None or text is False:
        if text is False:  # a directory in its place, or too big: set aside
            cfg.boot_error = cfg.log.files[-1]
        cfg.log.info("config", "no {}: using defaults".format(cfg.path))
        return schema.defaults()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RuntimeError) as e:  # not UTF-8 (UnicodeError), not JSON, nested too deep
        _aside(cfg, "{} is invalid ({}); kept as {}.bad, started on defaults".format(cfg.path, e, cfg.path))
        return schema.defaults()
    reset = []
    for _ in range(len(data) + 1):
        try:
            values = schema.validate(data)
        except ValueError as e:  # a ConfigError names its key
            key = getattr(e, "field", None)
            if key not in data:
                break
            reset.append("{} ({})".format(key, getattr(e, "reason", e)))
            del data[key]
            continue
        if reset:
            _aside(cfg, "{}: reset to defaults: {}; the file as it was is kept as {}.bad".format(
                cfg.path, "; ".join(reset), cfg.path))
            try:
                save(cfg.path, values)
            except OSError as e2:
                cfg.log.error("config", "cannot save the repaired config: {}".format(e2))
        return values
    _aside(cfg, "{} does not validate; kept as {}.bad, started on defaults".format(cfg.path, cfg.path))
    return schema.defaults()


def secrets():
    """The secret keys (write-only: the API shows only whether they are set), as ``"\\nkey\\nkey\\n"``."""
    return "\n" + "".join(e[0] + "\n" for e in schema.entries() if e[1] == schema.SECRET)


def _aside(cfg, message):
    cfg.boot_error = message
    lazy.call("sensorbox.device.files", "aside", cfg.path, cfg.log, message)


def _dir(cfg):
    # where config.json is, as the start of a path a CA value can be (config_schema: "/..." or "./...")
    d = cfg.path[:cfg.path.rfind("/") + 1]
    return d if d[:1] == "/" or d[:1] == "." else "." + "/" + d


def _ca_files(cfg, partial, out):
    # CA certificates (PEM text) of the update into files of their own beside config.json, the value their path:
    # one a request streamed (``http/body.py``: (file, crc32, characters, its ends), checked here by the ends),
    # or given as text. Adds (key, file written, its final path) to out; the update's values become the paths.
    if not isinstance(partial, dict):
        return
    d = _dir(cfg)
    for k in partial:
        v = partial[k]
        if k not in ("mqtt.tls_ca", "webhook.tls_ca"):  # (config_schema: the CA keys)
            continue
        if isinstance(v, tuple):
            tmp, crc = v[0], v[1]
            out.append((k, tmp, ""))
            schema.check_value(k, v[3])  # the armour at both ends (body.py checked every character)
        elif isinstance(v, str) and v and v == schema.check_value(k, v) and v.lstrip(" ")[:1] == "-":
            tmp = d + k + ".tmp"
            out.append((k, tmp, ""))
            crc = binascii.crc32(v.encode())
            with open(tmp, "w") as f:
                for i in range(0, len(v), 512):
                    f.write(v[i:i + 512])
        else:
            continue
        partial[k] = d + "{}.{:08x}.pem".format(k, crc)
        out[-1] = (k, tmp, partial[k])


def update(cfg, partial):
    """Validate ``partial`` against ``cfg``, save the result and make it ``cfg``'s values. Returns the changed
    keys. Raises ConfigError or OSError, having changed nothing. Only the update's keys are handled (no dict of
    the whole configuration is made: in a busy heap its ~1.2 KB table was what a config update failed on). A CA
    certificate's text is kept in a file of its own, the value its path (``_ca_files``)."""
    cas = []
    try:
        _ca_files(cfg, partial, cas)
        return _update(cfg, partial, cas)
    finally:
        for k, tmp, path in cas:  # (what was not taken: a refused update, or the same certificate again)
            try:
                os.remove(tmp)
            except OSError:
                pass


def _update(cfg, partial, cas):
    values = schema.check_update(partial, cfg.get, partial)  # (partial: the caller's, converted in place)
    changed = [e[0] for e in schema.entries() if e[0] in values and values[e[0]] != cfg.get(e[0])]

    def new(k):  # the configuration as it would be
        return values[k] if k in values else cfg.get(k)

    if cfg.device is not None and any(k in values for k in _RUNNING):  # (what config_running checks, changed)
        lazy.call("sensorbox.device.config_running", "check", cfg.device, new, cfg.get)
    for k, tmp, path in cas:
        if k in changed:
            try:
                os.rename(tmp, path)
            except OSError:
                os.stat(path)  # (a retry of this update: renamed already)
    d = _dir(cfg)
    old = [cfg.get(k) for k in changed if str(cfg.get(k)).startswith(d + k + ".")]  # (a CA's file of our own)
    if changed:
        save(cfg.path, new)
        for v in old:  # certificate files no value names any more
            try:
                os.remove(v)
            except OSError:
                pass
        for k in changed:
            if schema.needs_reboot(k):  # ``cfg.booted``: the value in effect until the restart (made when needed)
                b = cfg.booted
                if b is None:
                    b = cfg.booted = {}
                if k not in b:
                    b[k] = cfg.get(k)
                if values[k] == b[k]:  # set back to what runs: nothing pending
                    del b[k]
                    if k in cfg.reboot_pending:
                        cfg.reboot_pending.remove(k)
                elif k not in cfg.reboot_pending:
                    cfg.reboot_pending.append(k)
        cfg.replace(values)
    return changed


def restarts(changed):
    """The services a change of the keys ``changed`` restarts (the schema says: ``config_schema.restarts``)."""
    out = []
    for k in changed:
        for s in schema.restarts(k):
            if s not in out:
                out.append(s)
    return out


def save(path, values):
    # Only keys that differ from the default are written: the file stays small and new defaults apply. Written a
    # key at a time and long strings (a CA certificate: up to 4000 characters) in pieces: no block of the heap
    # as large as the file is needed (one was: 503 for a long mqtt.tls_ca on a fragmented heap). ``values``: a
    # dict, or a function key -> value.
    get = values.get if isinstance(values, dict) else values
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        sep = "{"
        for e in schema.entries():
            v = get(e[0])
            if v != e[2]:
                f.write(sep)
                f.write(json.dumps(e[0]))
                f.write(":")
                if isinstance(v, str) and len(v) > 256:
                    f.write('"')
                    for i in range(0, len(v), 256):
                        f.write(json.dumps(v[i:i + 256])[1:-1])
                    f.write('"')
                else:
                    f.write(json.dumps(v))
                sep = ","
        f.write("}" if sep == "," else "{}")
    os.rename(tmp, path)
