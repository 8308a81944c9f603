"""The web UI in real headless Chromium (Debian ``chromium``, driven by Playwright), against the device app on the
MicroPython unix port: log in, live data moving, a setting applied, a range labelled, exports downloaded and
checked, a model uploaded and activated. Screenshots of each page go to ``test-artifacts/``."""

import csv
import io
import os
import time

import numpy as np
import pytest
from conftest import ADMIN_PASSWORD, REPO, retry_503 as _retry

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
ARTIFACTS = os.path.join(REPO, "test-artifacts")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    from conftest import Device
    from playwright.sync_api import sync_playwright

    dev = Device(tmp_path_factory.mktemp("ui-device"))
    os.makedirs(ARTIFACTS, exist_ok=True)
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(15000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(dev.url + "/")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#loginform button")
    page.wait_for_selector("#dashboard:not([hidden])")
    yield dev, page, errors
    ctx.close()
    browser.close()
    pw.stop()
    dev.stop()


def shot(page, name):
    page.screenshot(path=os.path.join(ARTIFACTS, name + ".png"), full_page=True)


def test_login_then_live_dashboard_moves(ui):
    dev, page, errors = ui
    page.wait_for_function("Number(document.querySelector('#nsamples').textContent) > 40")
    n1 = int(page.text_content("#nsamples"))
    page.wait_for_function("document.querySelector('#cls').textContent !== '–'")
    page.wait_for_function("document.querySelector('#leq').textContent.endsWith('dB')")
    time.sleep(1.5)
    n2 = int(page.text_content("#nsamples"))
    assert n2 > n1 + 20  # ~25 decimated frames per second keep arriving
    classes = _retry(dev.get, "/api/model").json()["active"]["classes"]
    assert page.text_content("#cls") in classes + ["unknown"]
    assert "confidence" in page.text_content("#conf")
    assert 90 < float(page.text_content("#leq").split()[0]) < 110  # the simulated microphone: ~100 dB SPL
    page.wait_for_function("document.querySelector('#dhealth').textContent.includes('KB in use')")
    # features from the live stream (one event per analysis window): the motion card
    page.wait_for_function("document.querySelector('#motion').textContent.endsWith(' g')")
    assert 0 <= float(page.text_content("#motion").split()[0]) < 8
    assert "dominant" in page.text_content("#motion2") and "Hz" in page.text_content("#motion2")
    shot(page, "dashboard")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    time.sleep(0.5)
    shot(page, "dashboard-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400  # nothing wider than the phone
    page.set_viewport_size({"width": 1200, "height": 900})
    assert not errors, errors


def test_settings_change_applies_and_errors_show_at_the_field(ui):
    dev, page, errors = ui
    page.goto(dev.url + "/#settings")
    field = page.wait_for_selector("#cfg-device\\.name")
    field.fill("browser-box")
    field.press("Tab")
    page.wait_for_selector(".field[data-key='device.name'] .ok")
    assert _retry(dev.get, "/api/config").json()["config"]["device.name"] == "browser-box"
    assert dev.status()["device"]["name"] == "browser-box"
    rate = page.wait_for_selector("#cfg-accel\\.poll_ms")
    rate.fill("0")
    rate.press("Tab")
    err = page.wait_for_selector(".field[data-key='accel.poll_ms'] .err:not(:empty)")
    assert "out of range" in err.text_content()
    assert _retry(dev.get, "/api/config").json()["config"]["accel.poll_ms"] != 0
    shot(page, "settings")
    assert not errors, errors


def test_history_select_label_and_export(ui):
    dev, page, errors = ui
    time.sleep(2)  # some stored data
    page.goto(dev.url + "/#history")
    over = page.wait_for_selector("#histchart .u-over")
    page.wait_for_function("document.querySelector('#hinfo').textContent.includes('points')")
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=8)
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=8)
    page.mouse.up()
    page.wait_for_function("!document.querySelector('#selinfo').textContent.startsWith('none')")
    page.fill("#labelname", "squats")
    page.click("#labelbtn")
    page.wait_for_selector("#labels td:text('squats')")
    labels = _retry(dev.get, "/api/labels").json()["labels"]
    lab = [x for x in labels if x["label"] == "squats"]
    assert len(lab) == 1 and lab[0]["end"] > lab[0]["start"]
    # predictions drawn as a class band along the chart's timeline, from the stored predictions
    page.wait_for_function("Number(document.querySelector('#histchart').dataset.segments) > 0")
    band = page.evaluate("""() => {
      const u = hist.plot, px = devicePixelRatio || 1;
      const y = Math.round(u.bbox.top + u.bbox.height - BAND * px / 2);
      const d = u.ctx.getImageData(Math.round(u.bbox.left), y, Math.round(u.bbox.width), 1).data;
      const want = new Set(hist.segs.map((s) => classColor(s.k)));
      const hex = (i) => "#" + [d[i], d[i + 1], d[i + 2]].map((v) => v.toString(16).padStart(2, "0")).join("");
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (want.has(hex(i))) n++;
      return { n: n, width: d.length / 4, segs: hist.segs, events: hist.events.length };
    }""")
    assert band["segs"] and band["n"] > 0.2 * band["width"], band  # the band's colours are on the canvas
    stored = _retry(dev.get, "/api/resources/predictions/data?format=csv&start=-300000").body.decode()
    stored_classes = {int(line.split(",")[1]) for line in stored.strip().split("\n")[1:]}
    assert stored_classes and {sg["k"] for sg in band["segs"]} <= stored_classes | {None}, (band, stored_classes)
    assert band["segs"][0]["t0"] < band["segs"][-1]["t1"]
    classes = _retry(dev.get, "/api/model").json()["active"]["classes"]
    legend = page.text_content("#hlegend")
    assert any(c in legend for c in classes + ["unknown"]), legend
    events = _retry(dev.get, "/api/events?start=-300000").json()
    assert band["events"] == min(200, len(events))  # event markers: the stored events of the range
    shot(page, "history")
    with page.expect_download() as d:
        page.click("#expcsv")
    rows = list(csv.reader(io.StringIO(open(d.value.path()).read())))
    assert rows[0] == ["t", "x", "y", "z"] and len(rows) > 5
    ts = [int(r[0]) for r in rows[1:]]
    assert lab[0]["start"] - 100 <= ts[0] and ts[-1] <= lab[0]["end"] + 100  # the selected range
    with page.expect_download() as d:
        page.click("#expnpy")
    arr = np.load(d.value.path())
    assert arr.dtype.names == ("t", "x", "y", "z") and len(arr) == len(rows) - 1
    assert list(arr["x"][:3]) == [int(r[1]) for r in rows[1:4]]
    assert not errors, errors


def test_model_upload_and_activate(ui):
    dev, page, errors = ui
    page.goto(dev.url + "/#models")
    page.wait_for_function("document.querySelector('#modelinfo').textContent.includes('Active model')")
    before = _retry(dev.get, "/api/model").json()
    assert before["active"]["origin"] == "default"
    mdir = os.path.join(REPO, "models", "default")
    page.set_input_files("#upmeta", os.path.join(mdir, "meta.json"))
    page.set_input_files("#upcsv", os.path.join(mdir, "model.csv"))
    page.click("#upbtn")
    page.wait_for_function("/^(uploaded|upload failed)/.test(document.querySelector('#modelmsg').textContent)",
                           timeout=60000)
    msg = page.text_content("#modelmsg")
    assert msg.startswith("uploaded") and str(os.path.getsize(os.path.join(mdir, "model.csv"))) in msg, msg
    page.click("#activate")
    page.wait_for_function("document.querySelector('#modelmsg').textContent !== '" + msg + "'", timeout=30000)
    assert page.text_content("#modelmsg") == "activated", page.text_content("#modelmsg")
    after = _retry(dev.get, "/api/model").json()
    assert after["active"]["origin"] != "default" and after["previous"] is True
    assert after["active"]["sha256"] == before["active"]["sha256"]  # the same model, now uploaded
    page.wait_for_function("!document.querySelector('#rollback').disabled")
    shot(page, "models")
    assert not errors, errors


def test_every_page_fits_a_phone(ui):
    dev, page, errors = ui
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for name, ready in (("dashboard", "#nsamples"), ("history", "#histchart .u-over"),
                            ("settings", "#grp-webhook .field"), ("models", "#modelinfo .k"),
                            ("health", "#tasks td")):
            page.goto(dev.url + "/#" + name)
            page.wait_for_selector(ready)
            time.sleep(1)
            shot(page, name + "-phone")
            # nothing wider than the phone: no sideways scrolling of the page
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
            wide = page.evaluate("""() => [...document.querySelectorAll('main *')].filter((e) => {
              const r = e.getBoundingClientRect(); return r.width > 0 && r.right > innerWidth + 1 &&
                !e.closest('.events, pre, table'); }).map((e) => e.tagName + '#' + e.id + '.' + e.className)""")
            assert not wide, (name, wide)
    finally:
        page.set_viewport_size({"width": 1200, "height": 900})
    assert not errors, errors


def test_health_and_logs_page(ui):
    dev, page, errors = ui
    page.goto(dev.url + "/#health")
    page.wait_for_function("document.querySelector('#log').textContent.includes('sampling 50 Hz')")
    page.wait_for_selector("#tasks td:text('accel')")
    assert "KB free" in page.text_content("#hstatus")
    shot(page, "health")
    assert not errors, errors


def test_settings_group_mqtt_and_webhook_keys_with_write_only_secrets(ui):
    # last in the module: each change of an mqtt.* key restarts the MQTT service, which reshuffles the heap
    dev, page, errors = ui
    page.goto(dev.url + "/#settings")
    page.wait_for_selector("#grp-mqtt .field")
    schema = _retry(dev.get, "/api/config/schema").json()["schema"]
    for prefix in ("mqtt", "webhook"):
        keys = [d["key"] for d in schema if d["key"].split(".")[0] == prefix]
        assert keys, prefix
        shown = page.eval_on_selector_all("#grp-{} .field".format(prefix), "els => els.map(e => e.dataset.key)")
        assert shown == keys, (prefix, shown)  # every key of the group, from the schema, in its order
        for d in schema:
            if d["key"] in keys:  # with its help text
                help_text = page.text_content(".field[data-key='{}'] .help".format(d["key"]))
                assert help_text and help_text[1:] in d["help"], d["key"]  # its "MQTT: " prefix dropped
    assert "State: off" in page.text_content("#grp-mqtt .state")
    assert page.text_content("#grp-mqtt .gtitle") == "MQTT" and page.text_content("#grp-webhook .gtitle") == "Webhooks"
    # every key is on the page once, grouped or not
    assert sorted(page.eval_on_selector_all(".field", "els => els.map(e => e.dataset.key)")) == \
        sorted(d["key"] for d in schema)
    # a secret is write-only: the page says "set" or "not set", never the value
    sel = ".field[data-key='mqtt.password']"
    assert page.text_content(sel + " .secret") == "not set"
    page.fill("#cfg-mqtt\\.password", "hunter2-secret")
    page.press("#cfg-mqtt\\.password", "Tab")
    page.wait_for_selector(sel + " .ok")
    assert page.text_content(sel + " .secret") == "set"
    assert _retry(dev.get, "/api/config").json()["config"]["mqtt.password"] == {"set": True}
    page.goto(dev.url + "/#health")
    page.goto(dev.url + "/#settings")
    page.wait_for_selector(sel + " .secret")
    page.wait_for_function("document.querySelector(\"{} .secret\").textContent === 'set'".format(sel))
    assert page.input_value("#cfg-mqtt\\.password") == ""
    assert "hunter2-secret" not in page.content()
    shot(page, "settings-integrations")
    page.click(sel + " button:text('Clear')")
    page.wait_for_function("document.querySelector(\"{} .secret\").textContent === 'not set'".format(sel))
    assert _retry(dev.get, "/api/config").json()["config"]["mqtt.password"] == {"set": False}
    assert not errors, errors
