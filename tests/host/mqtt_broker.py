"""Test helpers for the MQTT tests: a real mosquitto on a free 127.0.0.1 port (own config, own process) and a
paho-mqtt subscriber that records what arrives, and test certificates (openssl CLI) for a TLS listener.
``scripts/ensure-system-packages`` installs mosquitto and openssl (make test)."""

import getpass
import itertools
import os
import signal
import socket
import subprocess
import threading
import time

import paho.mqtt.client as paho

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1:port. ``users={"name": "password"}`` turns anonymous access off (unless
    ``anonymous``: accounts, and clients without credentials let in too); ``acl`` is the text of an ACL file
    (mosquitto's ``acl_file``: what each user may read and write)."""

    def __init__(self, tmp, port=None, users=None, tls=None, persist=False, anonymous=False, acl=None):
        self.port = port or free_port()
        self.dir = str(tmp)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = ["per_listener_settings false", "listener {} 127.0.0.1".format(self.port)]
        self.tls_port = None
        if tls:  # a second listener with TLS: tls = Certs(...)
            self.tls_port = free_port()
            lines += ["listener {} 127.0.0.1".format(self.tls_port), "cafile " + tls.ca, "certfile " + tls.cert,
                      "keyfile " + tls.key]
        # persist: sessions, subscriptions and retained messages in mosquitto.db, written only by save() (and a
        # clean stop), so a broker killed and restarted still has what was saved
        lines += ["persistence true", "persistence_location " + self.dir + "/", "autosave_interval 0"] if persist \
            else ["persistence false"]
        lines += ["log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice",
                 # started as root, mosquitto would switch to user "mosquitto", who cannot read pytest's tmp dir
                 "user " + getpass.getuser()]
        if users:
            pw = os.path.join(self.dir, "passwd")
            open(pw, "w").close()
            for u, p in users.items():
                subprocess.run(["mosquitto_passwd", "-b", pw, u, p], check=True, capture_output=True)
            os.chmod(pw, 0o600)
            lines += ["allow_anonymous " + ("true" if anonymous else "false"), "password_file " + pw]
            if acl:
                path = os.path.join(self.dir, "acl")
                with open(path, "w") as f:
                    f.write(acl)
                lines.append("acl_file " + path)
        else:
            lines.append("allow_anonymous true")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "broker.log"), "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < 60:  # (a moment alone; longer on a loaded machine)
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + open(os.path.join(self.dir, "broker.log")).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen")

    def save(self, timeout=10):
        """Write the in-memory state to mosquitto.db now (SIGUSR1; needs ``persist``) and wait until it is there."""
        db = os.path.join(self.dir, "mosquitto.db")
        before = os.stat(db).st_mtime_ns if os.path.exists(db) else None
        self.proc.send_signal(signal.SIGUSR1)
        t0 = time.time()
        while time.time() - t0 < timeout:
            if os.path.exists(db) and os.stat(db).st_mtime_ns != before:
                return
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not save its state")

    def stop(self, kill=True):
        if self.proc is not None and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(10)
        self.proc = None
        self.log.close()


class Link:
    """A TCP relay from a free 127.0.0.1 port (``port``) to the broker's: the device connects through it while the
    test's subscribers connect to the broker itself. ``cut()`` drops the connections through it and refuses new
    ones (an outage only the device sees: a subscriber stays connected and misses nothing the device sends once
    it is back, QoS 0 included, which a broker restart cannot promise); ``mend()`` listens again."""

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.conns = []
        self.lock = threading.Lock()
        self.srv = None
        self.mend()

    def mend(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(8)
        s.settimeout(0.1)
        self.srv = s
        threading.Thread(target=self._accept_loop, args=(s,), daemon=True).start()

    def _accept_loop(self, s):
        while self.srv is s:
            try:
                a, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                a.close()
                continue
            a.settimeout(None)
            with self.lock:
                self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    def _pipe(self, x, y):
        try:
            while True:
                d = x.recv(65536)
                if not d:
                    break
                y.sendall(d)
        except OSError:
            pass
        for z in (x, y):
            try:
                z.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        s, self.srv = self.srv, None
        if s is not None:
            s.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for z in conns:
            try:
                z.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            z.close()

    close = cut


class Certs:
    """A test CA and a server certificate it signs (for 127.0.0.1 and localhost), plus another CA that signed
    nothing here, made with the openssl CLI (EC P-256): ``ca``, ``cert``, ``key``, ``other_ca`` are PEM file
    paths."""

    def __init__(self, tmp):
        d = str(tmp)
        os.makedirs(d, exist_ok=True)
        j = lambda n: os.path.join(d, n)  # noqa: E731
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
        run("req", "-x509", *ec, "-keyout", j("ca.key"), "-out", j("ca.pem"), "-days", "2", "-subj", "/CN=sbtest CA")
        run("req", "-x509", *ec, "-keyout", j("other.key"), "-out", j("other.pem"), "-days", "2",
            "-subj", "/CN=sbtest other CA")
        run("req", *ec, "-keyout", j("srv.key"), "-out", j("srv.csr"), "-subj", "/CN=localhost")
        with open(j("ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        run("x509", "-req", "-in", j("srv.csr"), "-CA", j("ca.pem"), "-CAkey", j("ca.key"), "-CAcreateserial",
            "-out", j("srv.pem"), "-days", "2", "-extfile", j("ext.cnf"))
        os.chmod(j("srv.key"), 0o644)  # mosquitto reads it as the user it runs as
        self.ca, self.cert, self.key, self.other_ca = j("ca.pem"), j("srv.pem"), j("srv.key"), j("other.pem")

    @staticmethod
    def one_line(path):
        """The PEM text with its line breaks as spaces: a config string holds no control characters."""
        return " ".join(open(path).read().split("\n")).strip()


_ids = itertools.count()


class Collector:
    """A paho subscriber: ``messages`` is a list of (topic, payload bytes, retain), in arrival order, and
    ``arrived`` the time.time() of each."""

    def __init__(self, port, topics=("#",), user=None, password=None, persistent=False):
        self.messages = []
        self.arrived = []
        self.lock = threading.RLock()
        # persistent: a session the broker keeps (clean_session false): QoS 1 messages that arrive while this
        # client is away (e.g. before it has reconnected to a restarted broker) are queued for it
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="collector-{}-{}".format(os.getpid(), next(_ids)),
                             clean_session=not persistent)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_message = self._on
        self.c.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, 1) for t in topics]
        acks = []
        self.c.on_subscribe = lambda c, u, mid, rc, p: acks.append(mid)
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        # subscribed before the test goes on: a message published before that would be missed (paho connects and
        # subscribes in its own thread)
        t0 = time.time()
        while len(acks) < len(topics):
            assert time.time() - t0 < 60, "the collector could not subscribe to {}".format(topics)
            time.sleep(0.02)

    def _on(self, c, u, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.arrived.append(time.time())

    def on(self, topic):
        with self.lock:
            return [m for m in self.messages if m[0] == topic]

    def wait(self, cond, timeout=60):
        t0 = time.time()
        while time.time() - t0 < timeout:
            with self.lock:
                if cond(list(self.messages)):
                    return True
            time.sleep(0.05)
        raise AssertionError("timed out; got {} messages: {}".format(len(self.messages), self.messages[-5:]))

    def publish(self, topic, payload, retain=False):
        self.c.publish(topic, payload, 1, retain).wait_for_publish(5)

    def pause(self):
        """Stop the network loop: the client stays away from the broker until ``resume``."""
        self.c.loop_stop()

    def resume(self):
        self.c.loop_start()

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()
