"""Updates of the app with rollback on a simulated ESP32 (tests/host/fielddev.py: the real app, main.py's loader, two
slots in its data directory): upload -> verified -> switched -> on trial -> confirmed; a bad signature, a wrong
size, a damaged file or another arch refused with nothing changed; an app that crashes at import or does not get
healthy in time rolled back by itself; a power cut (SIGKILL) right after every step of the update and of the first
boot leaves the old or the new app running, never neither; firmware through esp32.Partition."""

import hashlib
import json
import os
import shutil
import struct

import pytest
from fielddev import FieldDevice, ui_login, until
from test_browser_ui import chromium  # noqa: F401 - the chromium fixture (all its users: one unit in a parallel run)

from conftest import ADMIN_PASSWORD
from sensorbox.host import bundle, names, ota

pytestmark = pytest.mark.e2e  # the simulated ESP32's whole app (fielddev.py)

HOME = [{"ssid": "home", "key": "correct-horse", "rssi": -55, "ip": "10.0.0.7"}]
CONFIG = {"time.ntp_host": "off", "mic.enabled": False}
FAST = {"SENSORBOX_WDT_MS": "4000", "SENSORBOX_HEALTHY_MS": "3000", "SENSORBOX_CONFIRM_MS": "10000"}


@pytest.fixture(autouse=True)
def keys(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSORBOX_KEYS", str(tmp_path / "keys"))


def _app_bundle():
    """What an update of the simulated ESP32 carries: the tests' unix bundle (with the ESP32's net/ modules, which
    the unix bundle of `sensorbox run` leaves out: bundle.BOARDS_ONLY)."""
    return bundle.build("unix", out_dir=os.path.join(bundle.BUILD, "unix-tests"), host_only=True)


def _device(root, env=None, **kw):
    os.makedirs(os.path.join(str(root), "data"), exist_ok=True)
    with open(os.path.join(str(root), "data", "wifi.json"), "w") as f:
        json.dump([{"ssid": "home", "password": "correct-horse"}], f)
    return FieldDevice(root, aps=HOME, config=CONFIG, env=dict(FAST, **(env or {})), **kw)



def _app(dev):
    return dev.get("/api/status").json()["app"]


def _bundle_copy(tmp, replace=None, patch=None):
    """A copy of the unix bundle with some of its lib/ modules replaced by others compiled from ``replace``
    ({module path in lib/: source}), or by their own source with ``patch``'s code after it ({module path in lib/:
    code}: the module as it is, but for what that code changes, so a part made to fail keeps every attribute the
    rest of the app reads; a stand-in written from scratch once lacked one the app's boot had come to read and
    crashed it, which is another test). Names are renamed as the bundle renamed them (host/names.py)."""
    src = _app_bundle()
    out = str(tmp)
    shutil.copytree(src, out)
    with open(os.path.join(out, "bundle.json")) as f:
        renames = json.load(f)["renames"]
    sources = dict(replace or {})
    for rel, extra in (patch or {}).items():
        with open(os.path.join(bundle.REPO, rel[:-4] + ".py")) as f:
            sources[rel] = f.read() + "\n" + extra
    for rel, code in sources.items():
        p = os.path.join(out, "lib", rel)
        s = p[:-4] + ".py"
        ren = renames.get(rel[:-4] + ".py")
        with open(s, "w") as f:
            f.write(names.rewrite(code, ren) if ren else code)
        bundle.compile_one(s, p, "x64", rel[:-4].replace("/", "."))
        os.remove(s)
    return out


def test_update_verified_switched_on_trial_then_confirmed(tmp_path):
    dev = _device(tmp_path / "dev")
    try:
        a = _app(dev)
        assert a["slot"] is None and a["key"] is False and a["trial"] is False
        log = []
        r = ota.deploy_ota(dev.url, _app_bundle(), password=ADMIN_PASSWORD, version="9.9.9-new",
                           log=log.append)
        assert r["version"] == "9.9.9-new" and r["slot"] == "a", (r, log)
        assert any("installed this host's update key" in x for x in log)
        dev_id = dev.status()["device"]["id"]
        assert os.path.exists(tmp_path / "keys" / (dev_id + ".key"))
        a = until(lambda: (lambda a: a if not a["trial"] else None)(_app(dev)), 30, "confirmed", dev)
        assert a["slot"] == "a" and a["version"] == "9.9.9-new" and "confirmed healthy" in a["why"]
        assert "ota: state switched" in dev.output() and "loader: update 9.9.9-new on trial" in dev.output()
        # the key cannot be replaced over the network now
        r = dev.put("/api/ota/key", {"key": "00" * 32})
        assert r.status == 409 and r.json()["field"] == "key"
        # a second update goes to the other slot; the UI's files come from the running slot
        ota.deploy_ota(dev.url, _app_bundle(), password=ADMIN_PASSWORD, version="9.9.10", log=log.append)
        a = until(lambda: (lambda a: a if not a["trial"] and a["version"] == "9.9.10" else None)(_app(dev)), 30,
                   "second update", dev)
        assert a["slot"] == "b"
        assert dev.get("/", auth=False).status == 200
        # once confirmed, the slot of the app before it is deleted (its flash free until the next update)
        until(lambda: not os.path.exists(os.path.join(dev.data_dir, "app", "a")), 10, "old slot pruned", dev)
        assert os.path.exists(os.path.join(dev.data_dir, "app", "b", "ok"))
    finally:
        dev.stop()


def test_bad_bundles_are_refused_and_change_nothing(tmp_path):
    dev = _device(tmp_path / "dev")
    try:
        dev_id = dev.status()["device"]["id"]
        # no key yet: refused
        k = ota.key_for(dev_id, create=True)
        good = ota.pack(_app_bundle(), k, version="1.2.3")
        r = dev.request("POST", "/api/ota", good, headers={"Content-Type": "application/octet-stream"})
        assert r.status == 409 and r.json()["field"] == "key"
        assert dev.put("/api/ota/key", {"key": "zz"}).status == 400
        assert dev.put("/api/ota/key", {"key": k.hex()}).status == 200
        # no credential: refused before anything is read
        r = dev.request("POST", "/api/ota", good[:2000], auth=False,
                        headers={"Content-Type": "application/octet-stream"})
        assert r.status == 401
        cases = {
            "bad signature": (ota.pack(_app_bundle(), os.urandom(32)), 403, "key"),
            "cut short": (good[:len(good) - 1000], 400, "size"),
            "bad magic": (b"PK\x03\x04" + good[4:], 400, None),
        }
        hl = struct.unpack(">I", good[5:9])[0]
        damaged = bytearray(good)
        damaged[9 + hl + 32 + 100] ^= 0xFF  # a byte of the first file
        cases["damaged file"] = (bytes(damaged), 400, None)
        head = json.loads(good[9:9 + hl])
        head["mpy"] = 10
        raw = json.dumps(head).encode()
        import hmac

        other = ota.MAGIC + len(raw).to_bytes(4, "big") + raw + hmac.new(k, raw, hashlib.sha256).digest() + \
            good[9 + hl + 32:]
        cases["another arch"] = (other, 400, "arch")
        for name, (data, status, field) in cases.items():
            r = dev.request("POST", "/api/ota", data, headers={"Content-Type": "application/octet-stream"})
            assert r.status == status, (name, r.status, r.body)
            if field:
                assert r.json()["field"] == field, (name, r.body)
            a = _app(dev)
            assert a["slot"] is None and not a["trial"], (name, a)
            assert not os.path.exists(os.path.join(dev.data_dir, "app", "a", "ok")), name
        assert dev.boots == 1  # nothing restarted it
    finally:
        dev.stop()


def test_an_app_that_crashes_at_import_is_rolled_back(tmp_path):
    dev = _device(tmp_path / "dev")
    try:
        bad = _bundle_copy(tmp_path / "bad",
                           {"sensorbox/device/app.mpy": "raise RuntimeError('the new app is broken')\n"})
        r = ota.deploy_ota(dev.url, bad, password=ADMIN_PASSWORD, version="6.6.6-broken", wait=False,
                           log=lambda *a: None)
        assert r["slot"] == "a"

        def back():
            a = _app(dev)
            return a if a["slot"] is None and "rolled back" in (a["why"] or "") else None

        a = until(back, 60, "rollback", dev)
        assert "6.6.6-broken" in a["why"] and "first boot" in a["why"]
        assert "the new app is broken" in dev.output()
    finally:
        dev.stop()


def test_an_app_not_healthy_in_time_is_rolled_back(tmp_path):
    # the update's sampler is the real one but for its service, which fails at every start
    sampler = "async def _fails(self):\n    raise RuntimeError('the new sampler fails')\n\n\nSensor.run = _fails\n"
    dev = _device(tmp_path / "dev", env={"SENSORBOX_WDT_MS": "600000"})  # (so the watchdog does not come first)
    try:
        bad = _bundle_copy(tmp_path / "bad", patch={"sensorbox/device/sensors/sampler.mpy": sampler})
        ota.deploy_ota(dev.url, bad, password=ADMIN_PASSWORD, version="7.0-unhealthy", wait=False,
                       log=lambda *a: None)

        def back():
            a = _app(dev)
            return a if a["slot"] is None and "rolled back" in (a["why"] or "") else None

        a = until(back, 90, "rollback", dev)
        assert "not healthy in time" in a["why"] and "is failing" in a["why"], a
        assert "the new sampler fails" in a["why"], a  # (the patched service's own error: the update's app ran)
        assert dev.resets.count("reset") == 2  # into the update, and back
    finally:
        dev.stop()


STEPS = ["ota: writing slot", "ota: files verified", "ota: slot complete", "ota: state switched",
         "loader: update 8.0-new on trial", "info app update 8.0-new (slot a) confirmed healthy"]


@pytest.mark.parametrize("step", STEPS)
def test_power_cut_right_after_each_step_leaves_the_old_or_the_new_app(tmp_path, step):
    dev = _device(tmp_path / "dev", env={"SENSORBOX_STEP_MS": "1500"})
    try:
        k = ota.key_for(dev.status()["device"]["id"], create=True)
        assert dev.put("/api/ota/key", {"key": k.hex()}).status == 200
        data = ota.pack(_app_bundle(), k, version="8.0-new")
        import threading

        def send():
            try:
                dev.request("POST", "/api/ota", data, headers={"Content-Type": "application/octet-stream"},
                            timeout=60)
            except OSError:
                pass  # the connection dies with the device

        start = len(dev.output())
        threading.Thread(target=send, daemon=True).start()
        dev.wait_console(step, start, timeout=60)
        dev.power_cut()
        a = until(lambda: _app(dev), 60, "a running app after the power cut", dev)
        new = step in STEPS[3:]  # switched before the cut: the new app (on trial, or rolled back if it was cut
        # during its one trial boot)
        if step.startswith("loader"):
            assert a["slot"] is None and "rolled back" in a["why"], a  # cut during its trial boot
        elif new:
            assert a["version"] == "8.0-new" and a["slot"] == "a", a
        else:
            assert a["slot"] is None and not a["trial"], a  # the old app, the update as if never sent
            if step != "ota: slot complete":  # (complete but never switched to: a slot the next update rewrites)
                assert not os.path.exists(os.path.join(dev.data_dir, "app", "a", "ok"))
        # and it serves, and a whole update still works afterwards
        assert dev.get("/api/config").status == 200
    finally:
        dev.stop()


def test_firmware_update_through_the_partition_and_its_rollback(tmp_path):
    dev = _device(tmp_path / "dev")
    try:
        k = ota.key_for(dev.status()["device"]["id"], create=True)
        assert dev.put("/api/ota/key", {"key": k.hex()}).status == 200
        a = _app(dev)
        assert a["firmware"]["running"] == "ota_0"
        fw = b"\xe9" + os.urandom(40000)
        data = ota.pack(_app_bundle(), k, version="fw-2", files=[("firmware.bin", fw)])
        notfw = ota.pack(_app_bundle(), k, version="fw-x", files=[("firmware.bin", b"\x00" * 5000)])
        r = dev.request("POST", "/api/ota/firmware", notfw, headers={"Content-Type": "application/octet-stream"})
        assert r.status == 400 and r.json()["field"] == "firmware"  # the bootloader refuses a non-image
        r = dev.request("POST", "/api/ota/firmware", data, headers={"Content-Type": "application/octet-stream"})
        assert r.status == 200 and r.json()["partition"] == "ota_1", r.body
        a = until(lambda: (lambda a: a if a["firmware"]["running"] == "ota_1" else None)(_app(dev)), 30,
                   "new firmware", dev)
        with open(os.path.join(dev.board, "part_ota_1.bin"), "rb") as f:
            assert f.read(len(fw)) == fw
        until(lambda: not _app(dev)["firmware"]["update"]["pending"], 30, "firmware confirmed", dev)
        with open(os.path.join(dev.board, "otadata.json")) as f:
            assert json.load(f)["state"] == "valid"
    finally:
        dev.stop()


def test_upload_in_the_web_ui(tmp_path, chromium):  # noqa: F811
    dev = _device(tmp_path / "dev")
    try:
        k = ota.key_for(dev.status()["device"]["id"], create=True)
        assert dev.put("/api/ota/key", {"key": k.hex()}).status == 200
        f = tmp_path / "update.sbu"
        f.write_bytes(ota.pack(_app_bundle(), k, version="5.5-ui"))
        ctx = chromium.new_context(viewport={"width": 1200, "height": 900})
        try:
            page = ctx.new_page()
            ui_login(page, dev.url + "/#health", ADMIN_PASSWORD)
            page.wait_for_function(
                "document.getElementById('appinfo').textContent.indexOf('deployed over USB') >= 0")
            page.set_input_files("#otafile", str(f))
            page.click("#otabtn")
            page.wait_for_function(
                "document.getElementById('otamsg').textContent.indexOf('installed in slot a') >= 0", timeout=60000)
        finally:
            ctx.close()
        a = until(lambda: (lambda a: a if a["version"] == "5.5-ui" and not a["trial"] else None)(_app(dev)), 60,
                   "the update from the UI, confirmed", dev)
        assert a["slot"] == "a"
    finally:
        dev.stop()
