"""Reading ``config.json`` at boot (``config.Config``, which loads this module for it): the values, validated
by the schema, and the secret keys. What the device does with a missing, unreadable or invalid file: ``load``.
"""

import json

from sensorbox.device import files
from sensorbox.device.config_file import save
from sensorbox.shared import config_schema as schema


def load(cfg):
    """The values in ``cfg.path``, validated; the defaults when it is missing. A file that does not parse is
    moved aside to ``.bad`` and the device starts on defaults. A file with keys that do not validate (a value out
    of a range that a new version narrowed, a key it no longer knows) keeps every other key: the bad ones are
    reset to their defaults, the file as it was is kept as ``.bad`` and the repaired one saved. Either way the
    log and ``cfg.boot_error`` say what happened. Whatever the file holds (bytes that are not UTF-8, a directory
    in its place), the device starts."""
    text = files.read(cfg.path, cfg.log, 65536)
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
    files.aside(cfg.path, cfg.log, message)
