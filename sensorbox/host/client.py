"""Talking to a device from the host tools (``sensorbox pull``, ``model``, ``train --push``): the URL, the
credential, retries, and errors that say what to do next.

Credentials, first found wins: ``token`` (``--token``), ``password`` (``--password``), a password in the URL
(``http://admin:secret@host``), ``$SENSORBOX_TOKEN``, ``$SENSORBOX_PASSWORD``, then (``ask=True`` on a terminal) a
prompt for the admin password. A token is sent as ``Authorization: Bearer sb_<id>_<secret>``; the admin password
as HTTP Basic. A ``read`` token may pull data and read model info; anything that changes the device needs an admin
token or the admin password.
"""

import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TOKENS_WHERE = "the device's web UI under Settings > API tokens"
CREDENTIAL_HELP = ("give the admin password (--password or set $SENSORBOX_PASSWORD) or an API token (--token or "
                   "$SENSORBOX_TOKEN; make one in {})".format(TOKENS_WHERE))


class DeviceError(Exception):
    """A request to a device failed; the message says why and what to do."""


def check_token(token):
    """``token`` if it looks like ``sb_<id>_<secret>``, else DeviceError saying where tokens come from."""
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != "sb" or not parts[1].isdigit() or not parts[2]:
        raise DeviceError("the API token should look like sb_<id>_<secret>, as shown once when it was made in {}; "
                          "got {!r}".format(TOKENS_WHERE, token[:6] + "..." if len(token) > 6 else token))
    return token.strip()


class Client:
    """HTTP to one device. ``kind`` is "token", "password" or None (no credential: only the open routes)."""

    def __init__(self, url, password=None, token=None, user="admin", timeout=30, ask=False, retry_wait=1.5):
        def bad(why):
            return DeviceError("{!r} is not a device URL ({}): expected e.g. http://127.0.0.1:8080".format(url, why))

        text = url.strip()
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
            raise bad("it holds a space or a control character")
        try:
            u = urllib.parse.urlsplit(text if "://" in text else "http://" + text)
            port = u.port
        except ValueError as e:  # a port that is not a number or out of range, a broken [IPv6] host
            raise bad("its port must be a number from 1 to 65535" if "port" in str(e).lower() else str(e))
        if u.scheme not in ("http", "https"):
            raise bad("http:// or https:// only")
        if not u.hostname:
            raise bad("no host")
        if port == 0:
            raise bad("its port must be a number from 1 to 65535")
        host = "[{}]".format(u.hostname) if ":" in u.hostname else u.hostname
        self.url = "{}://{}{}{}".format(u.scheme, host, ":{}".format(port) if port else "",
                                          u.path.rstrip("/"))
        self.host = u.hostname
        self.timeout = timeout
        self.retry_wait = retry_wait
        env_token = os.environ.get("SENSORBOX_TOKEN") or None
        env_password = os.environ.get("SENSORBOX_PASSWORD")
        if token is None and password is None:
            if u.password is not None:
                password, user = urllib.parse.unquote(u.password), urllib.parse.unquote(u.username or user)
            elif env_token:
                token = env_token
            elif env_password is not None:
                password = env_password
            elif ask and sys.stdin.isatty():
                import getpass

                password = getpass.getpass("admin password of {} (or Ctrl-C, then give --token): ".format(
                    self.host))
        self.kind = None
        self.auth = None  # no credential, no Authorization header: an empty one would count as a failed login
        if token is not None:
            self.kind = "token"
            self.auth = "Bearer " + check_token(token)
        elif password is not None:
            self.kind = "password"
            self.auth = "Basic " + base64.b64encode("{}:{}".format(user, password).encode()).decode()

    def open(self, path, method="GET", body=None, content_type="application/octet-stream", retries=3):
        """The response (a file-like object) of ``method path``. DeviceError on failure."""
        headers = {"Authorization": self.auth} if self.auth else {}
        if body is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code in (429, 503) and retries:  # logins locked after a wrong password; device short of memory
                time.sleep(self.retry_wait)
                return self.open(path, method, body, content_type, retries - 1)
            try:
                msg = json.loads(e.read()).get("error")
            except (ValueError, AttributeError):
                msg = e.reason
            raise DeviceError("{} {}: HTTP {} {}{}".format(method, self.url + path, e.code, msg,
                                                           self._hint(e.code, msg)))
        except OSError as e:
            why = getattr(e, "reason", e)
            if isinstance(why, ssl.SSLError) and self.url.startswith("https:"):
                raise DeviceError("cannot talk TLS with {}: {}. A sensorbox serves plain HTTP: try {} (https:// only "
                                  "through a TLS proxy in front of it)".format(self.url, why, "http" + self.url[5:]))
            raise DeviceError("cannot reach {}: {} (is the device running, and is the URL right?)".format(
                self.url, why))

    def _hint(self, code, msg):
        if code == 401:
            if self.kind is None:
                return "; " + CREDENTIAL_HELP
            if self.kind == "token":
                return ("; the API token is invalid or was revoked: make a new one in {}, or give the admin "
                        "password (--password)".format(TOKENS_WHERE))
            return "; the password is wrong (--password or $SENSORBOX_PASSWORD)"
        if code == 403 and self.kind == "token" and "scope" in str(msg):
            return (". This API token is read-only: it may pull data and show the model, but pushing, activating "
                    "or rolling back a model needs an admin token (make one with scope admin in {}) or the admin "
                    "password (--password or $SENSORBOX_PASSWORD)".format(TOKENS_WHERE))
        if code == 429:
            return "; the device locks logins for a while after a wrong password: wait, then retry"
        return ""

    def json(self, path, method="GET", body=None, content_type="application/json"):
        with self.open(path, method, body, content_type) as r:
            return json.loads(r.read() or b"null")


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, unless ``force``). ``total`` is what is
    expected (None if unknown); when it closes, the line shows what really came."""

    def __init__(self, name, total, stream=None, force=None, unit="KB"):
        self.name = name
        self.total = total
        self.done = 0
        self.unit = unit
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty() if force is None else force
        self.t0 = time.time()

    def _draw(self, end=""):
        frac = 1.0 if end else (min(1.0, self.done / self.total) if self.total else 0.0)
        dt = max(time.time() - self.t0, 1e-6)
        if self.unit == "KB":
            amount = "{:8.1f} KB {:7.1f} KB/s".format(self.done / 1024, self.done / dt / 1024)
        else:
            amount = "{}/{} {}".format(self.done, self.total, self.unit)
        self.stream.write("\r{:12} [{:30}] {:5.1f}% {}{}".format(self.name, "#" * int(frac * 30), 100 * frac,
                                                                amount, end))
        self.stream.flush()

    def add(self, n):
        self.done += n
        if self.on:
            self._draw()

    def close(self):
        if self.on:
            self.total = self.done  # the estimate was only an estimate: end at what really came
            self._draw("\n")


def add_credential_args(p, needs="read", when=""):
    """``--token`` and ``--password`` on a subcommand's parser; ``needs``: the scope the command needs."""
    p.add_argument("--token", metavar="TOKEN",
                   help="{}API token sb_<id>_<secret> (default $SENSORBOX_TOKEN); {} (make one in the web UI under "
                        "Settings > API tokens)".format(when, "a read token is enough" if needs == "read" else
                                               "it needs scope admin"))
    p.add_argument("--password", metavar="PASSWORD",
                   help="{}admin password (default: from the URL, $SENSORBOX_PASSWORD, else asked on a "
                        "terminal)".format(when))
