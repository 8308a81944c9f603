"""The device's configuration on flash: ``config.json`` in the data directory, validated by the shared schema.

Boot: a missing file means defaults. A file that does not parse or does not validate is moved aside to
``config.json.bad`` for inspection, reported in the log and in ``boot_error``, and the device starts on defaults.
Update: ``update(partial)`` validates the whole result first, writes it atomically (temp file + rename, which
littlefs does atomically), and only then makes it the config in force and tells the listeners which keys changed.
A rejected update raises ``ValueError`` with ``key`` and ``reason`` and changes nothing.

The schema module is loaded only while it is needed (boot, an update, the API's view; see ``lazy``): between
those moments the device runs on the plain ``values`` dict and the schema's ~6 KB of heap stay free.
"""

import json
import os

from sensorbox.device import lazy

_SCHEMA = "sensorbox.shared.config_schema"


class Config:
    def __init__(self, path, log):
        self.path = path
        self.log = log
        self.boot_error = None
        self.reboot_pending = []
        self._listeners = []
        schema = lazy.load(_SCHEMA)
        try:
            self.values = schema.defaults()
            self._load(schema)
        finally:
            lazy.unload(_SCHEMA)

    def get(self, key):
        return self.values[key]

    def listen(self, fn):
        """``fn(changed_keys)`` is called after every accepted change."""
        self._listeners.append(fn)

    def _load(self, schema):
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            self.log.info("config", "no {}: using defaults".format(self.path))
            return
        try:
            self.values = schema.validate(json.loads(text))
        except ValueError as e:  # bad JSON or a ConfigError
            self.boot_error = "{} is invalid ({}); kept as {}.bad, started on defaults".format(self.path, e, self.path)
            self.log.error("config", self.boot_error)
            try:
                os.rename(self.path, self.path + ".bad")
            except OSError as e2:
                self.log.error("config", "cannot move the bad config aside: {}".format(e2))

    def update(self, partial):
        """Validate and apply ``partial``; returns the list of changed keys. Raises ConfigError or OSError."""
        schema = lazy.load(_SCHEMA)
        try:
            merged = schema.validate(partial, self.values)
            changed = [k for k in schema.keys() if merged[k] != self.values[k]]
            if changed:
                self._save(schema, merged)
                for k in changed:
                    if schema.needs_reboot(k) and k not in self.reboot_pending:
                        self.reboot_pending.append(k)
        finally:
            lazy.unload(_SCHEMA)
        if not changed:
            return changed
        self.values = merged
        self.log.info("config", "changed: {}".format(", ".join(changed)))
        for fn in self._listeners:
            try:
                fn(changed)
            except Exception as e:
                self.log.exception("config", "listener failed", e)
        return changed

    def public(self):
        """The configuration as the API shows it (secrets replaced by whether they are set)."""
        schema = lazy.load(_SCHEMA)
        try:
            return schema.public_view(self.values)
        finally:
            lazy.unload(_SCHEMA)

    def _save(self, schema, values):
        # Only keys that differ from the default are written: the file stays small and new defaults apply.
        out = {}
        for e in schema.entries():
            if values[e[0]] != e[2]:
                out[e[0]] = values[e[0]]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(out))
        os.rename(tmp, self.path)
