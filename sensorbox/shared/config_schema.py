"""The device configuration schema and its validator: one declaration, used by the device, the host and the UI.

A configuration is a flat mapping of dotted keys (``"accel.rate_hz"``) to values. Each key is declared once in
``SCHEMA`` with its kind, default, bounds and whether a change applies live or needs a restart. ``validate``
checks a partial update against the schema and the current values and returns the merged configuration, or
raises ``ConfigError`` naming the key and the reason. Nothing is ever half-applied.
"""

# Kinds of value.
INT = "int"
FLOAT = "float"
BOOL = "bool"
STR = "str"
CHOICE = "choice"
SECRET = "secret"  # a string that is accepted on write and never returned

# Flags.
LIVE = 0  # applied without a restart (the services that use the key restart themselves)
REBOOT = 1  # stored at once, takes effect after a restart


class ConfigError(ValueError):
    """A configuration value was rejected. ``key`` names it, ``reason`` says why."""

    def __init__(self, key, reason):
        super().__init__("{}: {}".format(key, reason))
        self.key = key
        self.reason = reason


# (key, kind, default, low, high | choices, apply). For CHOICE, low is None and high is the tuple of values.
# Help texts live in config_docs.py: the device never loads them (RAM), the UI and docs do.
SCHEMA = (
    ("device.name", STR, "sensorbox", 1, 32, LIVE),
    ("http.port", INT, 80, 1, 65535, REBOOT),
    ("log.level", CHOICE, "info", None, ("debug", "info", "warning", "error"), LIVE),
    ("log.file_kb", INT, 32, 4, 512, LIVE),
    ("accel.enabled", BOOL, True, None, None, LIVE),
    ("accel.rate_hz", CHOICE, 50, None, (25, 50, 100), LIVE),
    ("accel.range_g", CHOICE, 8, None, (2, 4, 8, 16), LIVE),
    ("accel.poll_ms", INT, 40, 5, 1000, LIVE),
    ("mic.enabled", BOOL, True, None, None, LIVE),
    ("mic.rate_hz", CHOICE, 16000, None, (8000, 16000), LIVE),
    ("mic.poll_ms", INT, 20, 5, 200, LIVE),
    ("sim.replay_gap_every_s", INT, 0, 0, 86400, LIVE),
    ("sim.replay_gap_ms", INT, 500, 0, 60000, LIVE),
    ("sim.replay_noise", INT, 0, 0, 4096, LIVE),
    ("sim.mic_signal", CHOICE, "tone+noise", None, ("tone", "noise", "tone+noise", "silence"), LIVE),
    ("sim.mic_tone_hz", INT, 1000, 20, 3980, LIVE),
    ("sim.mic_tone_dbfs", INT, -20, -90, 0, LIVE),
    ("sim.mic_noise_dbfs", INT, -50, -90, 0, LIVE),
)

_BY_KEY = {}
for _entry in SCHEMA:
    _BY_KEY[_entry[0]] = _entry


def keys():
    """All keys, in declaration order."""
    return tuple(e[0] for e in SCHEMA)


def entry(key):
    """The schema entry of ``key``, or None."""
    return _BY_KEY.get(key)


def defaults():
    """A new dict holding every key's default."""
    out = {}
    for e in SCHEMA:
        out[e[0]] = e[2]
    return out


def is_secret(key):
    e = _BY_KEY.get(key)
    return e is not None and e[1] == SECRET


def needs_reboot(key):
    e = _BY_KEY.get(key)
    return e is not None and e[5] == REBOOT


def check_value(key, value):
    """Return ``value`` converted to the key's kind, or raise ConfigError."""
    e = _BY_KEY.get(key)
    if e is None:
        raise ConfigError(key, "unknown key")
    kind, low, high = e[1], e[3], e[4]
    # bool is a subclass of int on CPython and MicroPython alike: exclude it from numbers explicitly.
    if kind == BOOL:
        if value is True or value is False:
            return value
        raise ConfigError(key, "expected true or false, got {}".format(_show(value)))
    if kind == INT:
        if value is True or value is False or not isinstance(value, int):
            if isinstance(value, float) and value == int(value):
                value = int(value)
            else:
                raise ConfigError(key, "expected an integer, got {}".format(_show(value)))
        if value < low or value > high:
            raise ConfigError(key, "{} is out of range {}..{}".format(value, low, high))
        return value
    if kind == FLOAT:
        if value is True or value is False or not isinstance(value, (int, float)):
            raise ConfigError(key, "expected a number, got {}".format(_show(value)))
        value = float(value)
        if value != value or value < low or value > high:
            raise ConfigError(key, "{} is out of range {}..{}".format(value, low, high))
        return value
    if kind == STR or kind == SECRET:
        if not isinstance(value, str):
            raise ConfigError(key, "expected a string, got {}".format(_show(value)))
        if len(value) < low or len(value) > high:
            raise ConfigError(key, "length {} is out of range {}..{}".format(len(value), low, high))
        for ch in value:
            if ord(ch) < 32:
                raise ConfigError(key, "control characters are not allowed")
        return value
    if kind == CHOICE:
        for c in high:
            if value == c and (value is True or value is False) == (c is True or c is False):
                return c
        raise ConfigError(key, "{} is not one of {}".format(_show(value), ", ".join(str(c) for c in high)))
    raise ConfigError(key, "schema kind {} unknown".format(kind))  # pragma: no cover


def validate(update, current=None):
    """Validate the partial ``update`` against the schema and return the merged configuration.

    ``current`` is the configuration in force (defaults when None). Raises ConfigError for the first bad key;
    neither argument is modified.
    """
    if not isinstance(update, dict):
        raise ConfigError("(body)", "expected a JSON object of key: value")
    merged = dict(current) if current is not None else defaults()
    for key in sorted(update):
        if not isinstance(key, str):
            raise ConfigError(str(key), "keys must be strings")
        merged[key] = check_value(key, update[key])
    return merged


def public_view(config):
    """The configuration as the API shows it: secrets are replaced by whether they are set."""
    out = {}
    for e in SCHEMA:
        k = e[0]
        if e[1] == SECRET:
            out[k] = {"set": bool(config.get(k))}
        else:
            out[k] = config.get(k, e[2])
    return out


def _show(value):
    s = repr(value)
    return s if len(s) <= 40 else s[:37] + "..."
