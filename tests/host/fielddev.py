"""A simulated ESP32 for end-to-end tests: the real device app on the unix port with the esp32 platform over the
board doubles (tests/support/board, ``fieldplat``), restarted like a board: when it resets itself (exit 75,
``machine.reset``) or when its watchdog (``machine.WDT``'s feed file) is not fed for its timeout (then it is killed
as the chip's reset would stop it). ``boots`` counts the starts; ``air(...)`` changes the access points around it.
"""

import json
import os
import signal
import subprocess
import threading
import time

import conftest
from conftest import ADMIN_PASSWORD, free_port
from sensorbox.host import bundle

BOARD_SRC = os.path.join(bundle.REPO, "tests", "support", "board")
FIELD_HEAP = "256wK"  # the doubles run from source here (compiled at import): more than the app's own heap


# (conftest.Device, not a bare name: the bundle's renamer (host/names.py) reads this file as MicroPython code,
# and a class named Device with a base would keep the app's Device from having its private names shortened)
class FieldDevice(conftest.Device):
    def __init__(self, root, aps=(), config=None, rtc_now=True, heap=FIELD_HEAP, env=None, wait=True):
        self.root = str(root)
        self.board = os.path.join(self.root, "board")
        os.makedirs(self.board, exist_ok=True)
        self.dns_port = free_port()
        self.boots = 0
        self.resets = []  # why each run ended: "reset", "watchdog", exit codes
        self.air(list(aps))
        data = os.path.join(self.root, "data")
        os.makedirs(data, exist_ok=True)
        if config is not None:
            with open(os.path.join(data, "config.json"), "w") as f:
                json.dump(config, f)
        if rtc_now:  # the RTC kept the time (else it starts in 2000, as after a power cut)
            self._put_board_file("rtc.json", {"offset": 0, "memory": ""})
        self._heap = heap
        self._env = dict(env or {})
        self._ending = False
        self._killed = False
        self.data_dir = data
        self.port = free_port()
        self.url = "http://127.0.0.1:{}".format(self.port)
        self._out_path = os.path.join(self.root, "console.txt")
        self._out = open(self._out_path, "ab")
        self.proc = None
        self._launch()
        self._thread = threading.Thread(target=self._run_board, daemon=True)
        self._thread.start()
        if wait:
            self.wait_ready(40)

    def _put_board_file(self, name, obj):
        with open(os.path.join(self.board, name), "w") as f:
            json.dump(obj, f)

    def air(self, aps, connect_ms=300, clients=0):
        """The access points around the board: [{"ssid", "key", "rssi", "ip", ...}] (see the network double)."""
        self._put_board_file("air.json", {"aps": aps, "connect_ms": connect_ms, "ap_clients": clients})

    def _launch(self):
        # the tests' copy of the unix bundle: with the ESP32's net/ and set-up page (bundle.BOARDS_ONLY)
        out = bundle.build("unix", out_dir=os.path.join(bundle.BUILD, "unix-tests"), host_only=True)
        e = bundle.micropython_env(out, {
            "SENSORBOX_DATA": os.path.join(self.root, "data"), "SENSORBOX_PORT": str(self.port),
            "SENSORBOX_BOARD": self.board,
            "SENSORBOX_DNS_PORT": str(self.dns_port), "SENSORBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}, path=(BOARD_SRC,))
        e.update(self._env)
        try:
            os.remove(os.path.join(self.board, "wdt"))
        except OSError:
            pass
        self.boots += 1
        self.proc = subprocess.Popen([bundle.micropython_path(), "-X", "heapsize=" + self._heap,
                                      os.path.join(BOARD_SRC, "fieldmain.py"), os.path.join(out, "main.py")], env=e, cwd=os.path.join(self.root, "data"),
                                     stdout=self._out, stderr=subprocess.STDOUT)

    def _run_board(self):
        # the board around the app: a reset starts it again; a watchdog not fed for its timeout resets it
        last, since = None, time.monotonic()
        while not self._ending:
            time.sleep(0.1)
            code = self.proc.poll()
            if code is not None:
                if self._ending:
                    return
                self.resets.append("reset" if code == 75 else "killed" if self._killed else code)
                if code != 75 and not self._killed:
                    return  # it stopped for good (a crash the board would show on its console)
                self._killed = False
                self._launch()
                last, since = None, time.monotonic()
                continue
            try:
                with open(os.path.join(self.board, "wdt")) as f:
                    count, timeout_ms = f.read().split()
            except (OSError, ValueError):
                continue
            now = time.monotonic()
            if count != last:
                last, since = count, now
            elif now - since > int(timeout_ms) / 1000:
                self.resets.append("watchdog")
                self.proc.kill()
                self.proc.wait()
                self._launch()
                last, since = None, time.monotonic()

    def power_cut(self):
        """SIGKILL now (a power cut, or a reset at the worst moment); the board boots again."""
        self._killed = True
        self.proc.kill()

    def wait_console(self, text, start=0, timeout=60):
        """Wait until ``text`` appears in the console output after offset ``start``; its end offset."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            out = self.output()
            i = out.find(text, start)
            if i >= 0:
                return i + len(text)
            time.sleep(0.02)
        raise AssertionError("{!r} not on the console within {} s:\n{}".format(text, timeout, self.output()[-3000:]))

    def wait_boots(self, n, timeout=60):
        t0 = time.time()
        while self.boots < n:
            if time.time() - t0 > timeout:
                raise AssertionError("{} boots after {} s (wanted {}):\n{}".format(self.boots, timeout, n,
                                                                                    self.output()[-3000:]))
            time.sleep(0.1)

    def dns_query(self, name, qtype=1, ident=0x1234, timeout=3):
        """A DNS query over UDP to the device's responder: (reply bytes) or None on timeout."""
        import socket
        import struct

        q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        for label in name.split("."):
            q += bytes([len(label)]) + label.encode()
        q += b"\x00" + struct.pack("!HH", qtype, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q, ("127.0.0.1", self.dns_port))
            try:
                return s.recvfrom(512)[0]
            except socket.timeout:
                return None

    def stop(self, sig=signal.SIGINT, timeout=10):
        self._ending = True
        return super().stop(sig, timeout)


def until(fn, timeout, what, dev):
    """``fn()``'s first true value within ``timeout`` s (errors of a device that is restarting count as not yet);
    AssertionError with the device's console otherwise."""
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError("{} not within {} s (last {}; boots {}, resets {}):\n{}".format(
        what, timeout, last, dev.boots, dev.resets, dev.output()[-4000:]))


def ui_login(page, url, password):
    """Open ``url`` in ``page`` and log in to the web UI."""
    page.goto(url)
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#password", password)
    page.click("#loginform button")
