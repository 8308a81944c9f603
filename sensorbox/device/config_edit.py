"""Reading and changing ``config.json``: the parts of ``config.Config`` that need the schema, loaded together with
it only while they run (at boot and for an update; see ``config`` and ``lazy``)."""

import json
import os

from sensorbox.shared import config_schema as schema


def load(cfg):
    """The values in ``cfg.path``, validated; the defaults when it is missing. A file that does not parse is
    moved aside to ``.bad`` and the device starts on defaults. A file with keys that do not validate (a value out
    of a range that a new version narrowed, a key it no longer knows) keeps every other key: the bad ones are
    reset to their defaults, the file as it was is kept as ``.bad`` and the repaired one saved. Either way the
    log and ``cfg.boot_error`` say what happened."""
    try:
        with open(cfg.path) as f:
            text = f.read()
    except OSError:
        cfg.log.info("config", "no {}: using defaults".format(cfg.path))
        return schema.defaults()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        _aside(cfg, "{} is invalid ({}); kept as {}.bad, started on defaults".format(cfg.path, e, cfg.path))
        return schema.defaults()
    reset = []
    for _ in range(len(data) + 1):
        try:
            values = schema.validate(data)
        except ValueError as e:  # a ConfigError names its key
            key = getattr(e, "key", None)
            if key not in data:
                break
            reset.append("{} ({})".format(key, getattr(e, "reason", e)))
            del data[key]
            continue
        if reset:
            _aside(cfg, "{}: reset to defaults: {}; the file as it was is kept as {}.bad".format(
                cfg.path, "; ".join(reset), cfg.path))
            try:
                _save(cfg.path, values)
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
    cfg.log.error("config", message)
    try:
        os.rename(cfg.path, cfg.path + ".bad")
    except OSError as e:
        cfg.log.error("config", "cannot move the bad config aside: {}".format(e))


def update(cfg, partial):
    """Validate ``partial`` against ``cfg``, save the result and make it ``cfg``'s values. Returns the changed
    keys. Raises ConfigError or OSError, having changed nothing. Only the update's keys are handled (no dict of
    the whole configuration is made: in a busy heap its ~1.2 KB table was what a config update failed on)."""
    values = schema.check_update(partial, cfg.get)
    changed = [e[0] for e in schema.entries() if e[0] in values and values[e[0]] != cfg.get(e[0])]
    if changed:
        _save(cfg.path, lambda k: values[k] if k in values else cfg.get(k))
        for k in changed:
            if schema.needs_reboot(k) and k not in cfg.reboot_pending:
                cfg.reboot_pending.append(k)
            cfg.set_value(k, values[k])
    return changed


def _save(path, values):
    # Only keys that differ from the default are written: the file stays small and new defaults apply.
    # ``values``: a dict, or a function key -> value.
    get = values.get if isinstance(values, dict) else values
    out = {}
    for e in schema.entries():
        v = get(e[0])
        if v != e[2]:
            out[e[0]] = v
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(out))
    os.rename(tmp, path)
