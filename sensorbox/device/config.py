"""The device's configuration on flash: ``config.json`` in the data directory, validated by the shared schema.

Boot: a missing file means defaults. A file that does not parse or does not validate is moved aside to
``config.json.bad`` for inspection, reported in the log and in ``boot_error``, and the device starts on defaults.
Update: ``update(partial)`` validates the whole result first, writes it atomically (temp file + rename, which
littlefs does atomically), and only then makes it the config in force and tells the listeners which keys changed.
A rejected update raises ``ValueError`` with ``key`` and ``reason`` and changes nothing.

The schema module is loaded only while it is needed (boot, an update; see ``lazy``), and with it
the code that reads and saves the file (``config_file``): between those moments the device runs on the values
alone and the schema's ~6 KB of heap stay free. They are kept compactly too: the keys in one string
(``"\\nkey\\nkey\\n..."``) and the values in a list in the same order, 2.3 KB where a dict of ~70 str keys
took 6 KB (x64) for as long as the device runs. ``get`` finds a key with ``str.find`` and allocates nothing;
``as_dict`` makes the dict form for the rare moments that need one.
"""

from micropython import const

from sensorbox.device import lazy

_FILE = const("sensorbox.device.config_file")  # imports the schema: lazy.unload(_FILE) drops both
# imported by the schema's webhook checks while they run (after _FILE's load): dropped with it, else it stays (1.8 KB)
_CHECKS = const("sensorbox.shared.integration_settings")
_ERR = object()  # get(): no default given


class Config:
    booted = None  # key -> the value in effect until the restart, for the keys in reboot_pending (config_file)

    def __init__(self, path, log):
        self.path = path
        self.log = log
        self.boot_error = None
        self.reboot_pending = []
        self._listeners = []
        self.device = None  # set by the app: updates are also checked against its running model (config_file)
        try:
            e = lazy.load(_FILE)
            self._store(e.load(self), e.secrets())
        finally:
            e = None
            lazy.unload(_FILE)
            lazy.unload(_CHECKS)

    def get(self, key, default=_ERR):
        """The value of ``key``; for an unknown key ``default``, or KeyError without one."""
        ks = self._keys
        n = len(key)
        i = ks.find(key)
        while i > 0:
            if ks[i - 1] == "\n" and ks[i + n] == "\n":  # a whole key, not part of a longer one
                return self._vals[ks.count("\n", 0, i) - 1]
            i = ks.find(key, i + 1)
        if default is _ERR:
            raise KeyError(key)
        return default

    def replace(self, values):
        """Make ``values`` (key -> value, each a known key and checked: ``config_file``) the values in force."""
        ks = self._keys
        for k in values:
            self._vals[ks.count("\n", 0, ks.find("\n" + k + "\n"))] = values[k]

    def as_dict(self):
        """Every key and its value, as a new dict."""
        return dict(self.items())

    def items(self):
        """(key, value) of every key, one at a time (no list of the keys is made)."""
        ks = self._keys
        i = 1
        n = 0
        while i < len(ks):
            j = ks.find("\n", i)
            yield ks[i:j], self._vals[n]
            i = j + 1
            n += 1

    def _store(self, values, secret=None):
        # secret: the secret keys in the form of _keys (known from the schema, which is not kept)
        if secret is not None:
            self._secret = secret
        keys = list(values)
        self._keys = "\n" + "\n".join(keys) + "\n"
        vals = [None] * len(keys)  # exactly sized: a comprehension grows the list by doubling (64 -> 128 slots)
        for i in range(len(keys)):
            vals[i] = values[keys[i]]
        self._vals = vals

    def listen(self, fn):
        """``fn(changed_keys, services)`` is called after every accepted change: ``services`` names the services the
        change restarts (``config_schema.restarts``)."""
        self._listeners.append(fn)

    def update(self, partial):
        """Validate and apply ``partial``; returns the list of changed keys. Raises ConfigError or OSError."""
        try:
            e = lazy.load(_FILE)
            changed = e.update(self, partial)
            services = e.restarts(changed)
        finally:
            e = None
            lazy.unload(_FILE)
            lazy.unload(_CHECKS)
        if not changed:
            return changed
        self.log.info("config", "changed: {}".format(", ".join(changed)))
        for fn in self._listeners:
            try:
                fn(changed, services)
            except Exception as e:
                self.log.exception("config", "listener failed", e)
        return changed

    def secret(self, key):
        """Whether ``key`` is a secret (written, never shown): noted when the values are stored, no schema needed."""
        return self._secret.find("\n" + key + "\n") >= 0

    def public(self):
        """(key, value) of every key, as the API shows them: a secret as ``{"set": whether it is}``. No dict of
        them all is made."""
        for k, v in self.items():
            yield k, ({"set": bool(v)} if self.secret(k) else v)
