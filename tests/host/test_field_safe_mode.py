"""Watchdog, boot counter and safe mode on a simulated ESP32 (tests/host/fielddev.py): a config that crashes a
service at boot 3 times -> safe mode with the reason and the traceback, fixed through the API the UI uses,
then a normal boot; an update sent in safe mode (the recovery route after a bad update) switched to and booted
normally; an unreadable boot record is no reason not to start."""

import json
import os

import pytest
from fielddev import FieldDevice, ui_login, until
from test_browser_ui import chromium  # noqa: F401 - the chromium fixture (all its users: one unit in a parallel run)
from test_field_ota import _app, _app_bundle, _bundle_copy

from conftest import ADMIN_PASSWORD
from sensorbox.host import ota

pytestmark = pytest.mark.e2e  # the simulated ESP32's whole app (fielddev.py)

HOME = [{"ssid": "home", "key": "correct-horse", "rssi": -55, "ip": "10.0.0.7"}]
FAST = {"SENSORBOX_WDT_MS": "3000", "SENSORBOX_HEALTHY_MS": "4000"}
CONFIG = {"time.ntp_host": "off", "mic.enabled": False}


def _wifi(root):
    os.makedirs(os.path.join(str(root), "data"), exist_ok=True)
    with open(os.path.join(str(root), "data", "wifi.json"), "w") as f:
        json.dump([{"ssid": "home", "password": "correct-horse"}], f)



@pytest.mark.slow  # (three boots that crash, then safe mode, a fix and a normal boot: ~25 s)
def test_boot_loop_goes_to_safe_mode_shows_why_and_a_fix_boots_normally(tmp_path, chromium):  # noqa: F811
    _wifi(tmp_path)
    dev = FieldDevice(tmp_path, aps=HOME, config=dict(CONFIG, **{"accel.rate_hz": 100}), env=FAST)
    try:
        def safe():
            s = dev.status()
            return s if s["boot"]["safe_mode"] else None

        s = until(safe, 120, "safe mode", dev)
        assert dev.boots == 4 and dev.resets == ["watchdog"] * 3, (dev.boots, dev.resets)
        b = s["boot"]
        assert b["unhealthy_boots"] == 3
        assert "accel" in b["last_failure"] and "driver bug" in b["last_failure"]
        assert "RuntimeError: driver bug" in b["last_traceback"] and "Traceback" in b["last_traceback"]
        assert "accel" not in s["tasks"] and "pipeline" not in s["tasks"] and "http" in s["tasks"]
        until(lambda: dev.status()["wifi"]["state"] == "up", 20, "wifi", dev)  # network, UI and updates stay
        probe = dev.get("/api/status", auth=False).json()["boot"]
        assert probe["safe_mode"] and "last_traceback" not in probe  # the traceback only with a credential
        assert "SAFE MODE after 3 unhealthy boots" in dev.output()
        # stays in safe mode, healthy (the watchdog is fed: HTTP is up)
        until(lambda: dev.status()["boot"]["healthy"], 20, "healthy safe mode", dev)
        assert dev.boots == 4
        # the fix, in the web UI (headless Chromium): the banner says why; the setting that crashed is changed on
        # the Settings page; "Restart normally"; then a normal boot
        _fix_in_the_ui(dev, chromium)
        until(lambda: dev.boots == 5, 30, "restart", dev)

        def normal():
            s = dev.status()
            return s if not s["boot"]["safe_mode"] and s["boot"]["healthy"] else None

        s = until(normal, 60, "a healthy normal boot", dev)
        assert s["boot"]["unhealthy_boots"] == 0 and "accel" in s["tasks"] and s["tasks"]["accel"]["running"]
        with open(os.path.join(dev.data_dir, "boot.json")) as f:
            assert json.load(f)["count"] == 0
        assert dev.resets == ["watchdog"] * 3 + ["reset"]
    finally:
        dev.stop()


@pytest.mark.slow  # (three boots that crash, safe mode, two updates and their boots: ~30 s)
def test_an_update_sent_in_safe_mode_is_switched_to_and_boots_normally(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSORBOX_KEYS", str(tmp_path / "keys"))
    _wifi(tmp_path)
    # (the accelerometer driver of the app deployed over USB crashes at 100 Hz; an update's has it fixed:
    # tests/support/board/fieldplat.py)
    dev = FieldDevice(tmp_path, aps=HOME, config=dict(CONFIG, **{"accel.rate_hz": 100}), env=FAST)
    try:
        until(lambda: dev.status()["boot"]["safe_mode"], 120, "safe mode", dev)
        assert dev.boots == 4 and dev.resets == ["watchdog"] * 3, (dev.boots, dev.resets)
        assert _app(dev)["slot"] is None
        # an update that is no fix (it crashes at import) gets its one normal boot, then safe mode is back at once,
        # on the app that was good
        bad = _bundle_copy(tmp_path / "bad", {"sensorbox/device/app.mpy": "raise RuntimeError('not the fix')\n"})
        log = []
        r = ota.deploy_ota(dev.url, bad, password=ADMIN_PASSWORD, version="9.0-nofix", wait=False, log=log.append)
        assert r["slot"] == "a", (r, log)

        def back_in_safe_mode():
            s = dev.status()
            return s if s["boot"]["safe_mode"] and "rolled back" in (s["app"]["why"] or "") else None

        s = until(back_in_safe_mode, 60, "safe mode again after the update that was no fix", dev)
        assert s["app"]["slot"] is None and "9.0-nofix" in s["app"]["why"], s["app"]
        assert "not the fix" in s["boot"]["last_failure"], s["boot"]
        assert dev.boots == 6 and dev.resets == ["watchdog"] * 3 + ["reset"] * 2, (dev.boots, dev.resets)
        # the fix
        a = ota.deploy_ota(dev.url, _app_bundle(), password=ADMIN_PASSWORD, version="9.1-fix", log=log.append)
        assert a["slot"] == "a" and a["version"] == "9.1-fix", (a, log)
        assert dev.boots == 7 and dev.resets == ["watchdog"] * 3 + ["reset"] * 3

        def confirmed():  # the update's boot: a normal one (the accelerometer up at 100 Hz), healthy, the update kept
            s = dev.status()
            return s if not s["app"]["trial"] and s["boot"]["healthy"] else None

        s = until(confirmed, 60, "the update confirmed", dev)
        # (one normal boot given to the update: the counter at SAFE_AFTER - 1, safe mode again had it not stayed
        # healthy; healthy, it is 0 again)
        assert s["boot"]["safe_mode"] is False and s["boot"]["unhealthy_boots"] == 2, s["boot"]
        assert s["tasks"]["accel"]["running"] and "pipeline" in s["tasks"], s["tasks"]
        assert s["app"]["slot"] == "a" and "confirmed healthy" in s["app"]["why"], s["app"]
        with open(os.path.join(dev.data_dir, "boot.json")) as f:
            assert json.load(f)["count"] == 0
        assert dev.boots == 7  # (no boot in between: the update's first boot was the normal one)
    finally:
        dev.stop()


def _fix_in_the_ui(dev, browser):
    art = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "test-artifacts")
    os.makedirs(art, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        page = ctx.new_page()
        ui_login(page, dev.url + "/#settings", ADMIN_PASSWORD)
        page.wait_for_selector("#safe:not([hidden])")
        assert "accel" in page.text_content("#safewhy") and "driver bug" in page.text_content("#safewhy")
        assert "RuntimeError" in page.text_content("#safetrace")
        sel = page.locator("#cfg-accel\\.rate_hz")
        sel.wait_for()
        page.screenshot(path=os.path.join(art, "safe-mode.png"), full_page=False)
        sel.select_option("50")
        page.locator('.field[data-key="accel.rate_hz"] .ok').wait_for()
        # (the page asks for the restart after a status probe: the context stays open until the device answered it)
        with page.expect_response(lambda r: r.url.endswith("/api/restart") and r.request.method == "POST") as restart:
            page.click("#saferestart")
        assert restart.value.ok, restart.value.status
        page.wait_for_function("document.getElementById('safewhy').textContent.indexOf('Restarting') >= 0")
    finally:
        ctx.close()


def test_unreadable_boot_record_is_reported_and_the_device_starts(tmp_path):
    _wifi(tmp_path)
    os.makedirs(os.path.join(str(tmp_path), "data"), exist_ok=True)
    with open(os.path.join(str(tmp_path), "data", "boot.json"), "wb") as f:
        f.write(b"\xff\x00{garbage")
    dev = FieldDevice(tmp_path, aps=HOME, config=CONFIG, env=FAST)
    try:
        s = dev.status()
        assert s["boot"]["safe_mode"] is False and s["boot"]["unhealthy_boots"] == 0
        assert "boot.json unreadable" in dev.output()
        until(lambda: dev.status()["boot"]["healthy"], 30, "healthy", dev)
        with open(os.path.join(dev.data_dir, "boot.json")) as f:
            assert json.load(f)["count"] == 0
    finally:
        dev.stop()
