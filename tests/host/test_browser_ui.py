"""The web UI in real headless Chromium (Debian ``chromium``, driven by Playwright), against the device app on the
MicroPython unix port: log in, live data moving, a setting applied, a range labelled, exports downloaded and
checked, a model uploaded and activated. Screenshots of each page go to ``test-artifacts/``."""

import csv
import io
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from conftest import ADMIN_PASSWORD, REPO, retry_503 as _retry, start_run, wait_for

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
ARTIFACTS = os.path.join(REPO, "test-artifacts")
LATENCY_MS = int(os.environ.get("SENSORBOX_UI_LATENCY_MS", "0"))  # added to each request of the pages (CDP)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    yield browser
    browser.close()
    pw.stop()


def login(browser, url, clock=False, **ctx_args):
    """A new browser context logged in to the device at ``url``: (context, page, page errors). ``clock``: the
    page's timers and Date run on Playwright's clock (``page.clock``, flowing until a test pauses it)."""
    ctx = browser.new_context(accept_downloads=True, **dict({"viewport": {"width": 1200, "height": 900}}, **ctx_args))
    page = ctx.new_page()
    if clock:
        page.clock.install()
    if LATENCY_MS:  # a slow network (what a loaded machine or a device far away looks like to the page)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": LATENCY_MS, "downloadThroughput": -1,
                                                      "uploadThroughput": -1})
    page.set_default_timeout(60000)  # waits on the device: generous, a loaded machine is only slower
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#loginform button")
    page.wait_for_selector("#dashboard:not([hidden])")
    return ctx, page, errors


@pytest.fixture(scope="module")
def ui(tmp_path_factory, chromium):
    from conftest import Device

    dev = Device(tmp_path_factory.mktemp("ui-device"))
    ctx, page, errors = login(chromium, dev.url)
    yield dev, page, errors
    ctx.close()
    dev.stop()


def shot(page, name):
    page.screenshot(path=os.path.join(ARTIFACTS, name + ".png"), full_page=True)


def show_settings(page, dev):
    """The Settings page, rendered afresh from the device, whichever page was shown: waits until the newest render
    started has painted (cfgState.seq renders started, cfgState.shown the one on the page). The module's page may
    be on Settings already (a hash navigation to the same hash renders nothing: then the page's own router runs)."""
    seq = page.evaluate("cfgState.seq || 0")
    if page.evaluate("location.hash") == "#settings":
        page.evaluate("route()")
    else:
        page.goto(dev.url + "/#settings")
    page.wait_for_function("cfgState.seq > {} && cfgState.shown === cfgState.seq".format(seq))


def test_login_then_live_dashboard_moves(ui):
    dev, page, errors = ui
    page.wait_for_function("Number(document.querySelector('#nsamples').textContent) > 40")
    n1 = int(page.text_content("#nsamples"))
    page.wait_for_function("document.querySelector('#cls').textContent !== '–'")
    page.wait_for_function("document.querySelector('#leq').textContent.endsWith(' dB(A)')")
    page.wait_for_function("Number(document.querySelector('#nsamples').textContent) > {}".format(n1 + 20))  # more
    # the class's display name and meaning, from the model's meta.json (the default model: seglearn's watch codes)
    info = _retry(dev.get, "/api/model/classes").json()
    assert info["classes"] == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"] and info["names"][0] == "Pendulum"
    shown = page.text_content("#cls")
    assert shown in info["names"] + ["unknown"], shown
    if shown != "unknown":
        i = info["names"].index(shown)
        assert page.text_content("#clsdesc") == info["descriptions"][i]
        assert page.text_content("#conf").startswith(info["classes"][i] + " · confidence ")
    assert "confidence" in page.text_content("#conf")
    assert 90 < float(page.text_content("#leq").split()[0]) < 110  # the simulated microphone: ~100 dB SPL
    assert re.fullmatch(r"Lmin \d+\.\d · Lmax \d+\.\d · L90 \d+\.\d dB\(A\)", page.text_content("#lstats"))
    page.wait_for_function("document.querySelector('#dhealth').textContent.includes('KB in use')")
    # features from the live stream (one event per analysis window): the motion card
    page.wait_for_function("document.querySelector('#motion').textContent.endsWith(' g')")
    assert 0 <= float(page.text_content("#motion").split()[0]) < 8
    assert "dominant" in page.text_content("#motion2") and "Hz" in page.text_content("#motion2")
    for age in ("#clsage", "#leqage", "#motage"):  # every live value says how old it is
        page.wait_for_function("document.querySelector('{}').textContent.startsWith('updated ')".format(age))
    # axes with units, time ticks at whole seconds or minutes
    assert page.evaluate("live.plot.axes.map((a) => a.label)") == ["time", "acceleration (g)"]
    ticks = page.evaluate("live.plot.axes[0]._values")
    assert ticks and all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in ticks), ticks
    assert "What do these mean?" in page.text_content("details.explain summary")
    page.click("details.explain summary")
    assert "L90" in page.text_content("details.explain p") and "A-weighted" in page.text_content("details.explain p")
    shot(page, "dashboard")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    # nothing wider than the phone, once the page has had the resize (the charts follow it)
    page.wait_for_function("document.documentElement.scrollWidth <= 400")
    shot(page, "dashboard-phone")
    page.set_viewport_size({"width": 1200, "height": 900})
    assert not errors, errors


def test_recent_events_are_the_stored_ones(ui):
    dev, page, errors = ui
    stored = wait_for(lambda: _retry(dev.get, "/api/events?start=-3600000").json(),  # the first prediction
                      "a stored event", every=0.5)  # stores a class_change event
    opened = _retry(dev.get, "/api/status").json()["time_ms"]
    page.goto(dev.url + "/#dashboard")
    page.reload()  # a fresh page: what the list shows at once comes from the store, not the live stream
    page.wait_for_selector("#dashboard:not([hidden])")
    first = stored[-1]
    assert first["t"] < opened
    li = page.wait_for_selector("#liveevents li[data-t='{}']".format(first["t"]))
    assert "activity:" in li.text_content() and "→" in li.text_content(), li.text_content()
    assert not errors, errors


def test_dashboard_says_when_analysis_stopped_and_ages_the_last_class(ui):
    dev, page, errors = ui
    page.goto(dev.url + "/#dashboard")
    page.wait_for_function("document.querySelector('#cls').textContent !== '–'")
    page.wait_for_function("document.querySelector('#clsage').textContent.startsWith('updated')")
    assert page.text_content("#astate") == ""
    assert _retry(dev.put, "/api/config", {"ml.enabled": False}).status == 200
    try:
        page.wait_for_function("document.querySelector('#astate').textContent === "
                               "'analysis stopped: ml.enabled is off'", timeout=20000)
        page.wait_for_function("document.querySelector('#clscard').classList.contains('stale')")
        # the last class stays on the card, greyed, saying how old it is
        page.wait_for_function("/^updated \\d+ s ago$/.test(document.querySelector('#clsage').textContent)")
        assert page.text_content("#cls") != "–"
        shot(page, "dashboard-stopped")
    finally:
        assert _retry(dev.put, "/api/config", {"ml.enabled": True}).status == 200
    page.wait_for_function("document.querySelector('#astate').textContent === ''", timeout=20000)
    page.wait_for_function("!document.querySelector('#clscard').classList.contains('stale')", timeout=20000)
    assert not errors, errors


def test_settings_labels_units_advanced_value_in_effect_and_refusals(ui):
    dev, page, errors = ui
    show_settings(page, dev)
    field = page.wait_for_selector("#cfg-device\\.name")
    field.fill("browser-box")
    field.press("Tab")
    page.wait_for_selector(".field[data-key='device.name'] .ok")
    assert _retry(dev.get, "/api/config").json()["config"]["device.name"] == "browser-box"
    assert dev.status()["device"]["name"] == "browser-box"
    sc = _retry(dev.get, "/api/config/schema").json()
    schema = {d["key"]: d for d in sc["schema"]}
    # people read labels and units (from the schema: config_docs), the key in small print
    assert (schema["accel.rate_hz"]["label"], schema["accel.rate_hz"]["unit"]) == ("Sample rate", "Hz")
    label = page.text_content(".field[data-key='accel.rate_hz'] label")
    assert label == "Sample rateaccel.rate_hz", label
    assert page.eval_on_selector("#cfg-accel\\.rate_hz", "e => e.selectedOptions[0].textContent") == "50 Hz"
    assert page.text_content(".field[data-key='store.accel_kb'] .unit") == "KB"
    assert "(0–1048576 KB, default 512 KB)" in page.text_content(".field[data-key='store.accel_kb'] .help")
    titles = {g["prefix"]: g["title"] for g in sc["groups"]}
    assert page.text_content("#grp-accel .gtitle") == titles["accel"] == "Accelerometer"
    # board wiring, the simulator and tuning keys are behind one closed "Advanced" section
    adv = [k for k, d in schema.items() if d["advanced"]]
    assert {"board.i2c_sda", "sim.replay_noise", "accel.poll_ms"} <= set(adv)
    inside = page.eval_on_selector_all(".field", "els => els.map(e => [e.dataset.key, !!e.closest('details#advanced')])")
    assert sorted(k for k, a in inside if a) == sorted(adv)
    assert sorted(k for k, a in inside) == sorted(schema)  # every key once
    assert not page.eval_on_selector("#advanced", "e => e.open")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 5000, height  # was ~6,600 px of raw keys
    # the port: the one served is in effect (the test's port), the configured one is 80
    assert page.input_value("#cfg-http\\.port") == "80"
    eff = ".field[data-key='http.port'] .eff"
    assert page.text_content(eff) == "in effect now: {}".format(dev.port)
    assert page.is_hidden("#pending")
    page.fill("#cfg-http\\.port", "8123")
    page.press("#cfg-http\\.port", "Tab")
    page.wait_for_selector(".field[data-key='http.port'] .ok")
    page.wait_for_function("document.querySelector(\"{}\").textContent === 'in effect now: {} · 8123 after a restart'"
                           .format(eff, dev.port))
    assert page.is_visible("#pending") and "Web port" in page.text_content("#pendingmsg")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "settings-pending")
    page.fill("#cfg-http\\.port", "80")
    page.press("#cfg-http\\.port", "Tab")
    page.wait_for_function("document.querySelector('#pending').hidden")
    assert page.text_content(eff) == "in effect now: {}".format(dev.port)
    # a refused value: the reason with its unit, and the field shows the value in effect again
    page.click("#advanced summary")
    rate = page.wait_for_selector("#cfg-accel\\.poll_ms")
    before = _retry(dev.get, "/api/config").json()["config"]["accel.poll_ms"]
    rate.fill("0")
    rate.press("Tab")
    err = page.wait_for_selector(".field[data-key='accel.poll_ms'] .err:not(:empty)")
    assert err.text_content() == "refused: 0 ms is out of range 5–1000 ms; kept {} ms".format(before), err.text_content()
    assert page.input_value("#cfg-accel\\.poll_ms") == str(before)
    assert _retry(dev.get, "/api/config").json()["config"]["accel.poll_ms"] == before
    shot(page, "settings-advanced")
    # jump links, to the API tokens too
    chips = page.eval_on_selector_all(".jump .chip", "els => els.map(e => e.textContent)")
    assert chips[-2:] == ["Advanced", "API tokens"] and "Accelerometer" in chips
    page.click(".jump .chip:text('API tokens')")
    page.wait_for_function("(r => r.top >= 0 && r.bottom <= innerHeight)(document.querySelector('#tokens')"
                           ".getBoundingClientRect())")
    page.evaluate("document.querySelector('#advanced').open = false; window.scrollTo(0, 0)")
    shot(page, "settings")
    assert not errors, errors


def _count_rows(dev, start, end):
    body = _retry(dev.get, "/api/resources/accel/data?format=csv&start={}&end={}".format(start, end)).body.decode()
    return len(body.strip().split("\n")) - 1


def _drag(page, box, a, b):
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * a, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (a + b) / 2, y, steps=8)
    page.mouse.move(box["x"] + box["width"] * b, y, steps=8)
    page.mouse.up()


def test_history_select_label_and_export(ui):
    dev, page, errors = ui
    dev.wait_stored("accel", rows=300)  # some stored data (6 s)
    before = _retry(dev.get, "/api/events?start=-300000").json()  # events stored before History loads
    page.goto(dev.url + "/#history")
    over = page.wait_for_selector("#histchart .u-over")
    page.wait_for_function("document.querySelector('#hinfo').textContent.includes('points')")
    box = over.bounding_box()
    _drag(page, box, 0.2, 0.8)
    page.wait_for_function("!document.querySelector('#selinfo').textContent.startsWith('none')")
    page.fill("#labelname", "squats")
    page.click("#labelbtn")
    page.wait_for_selector("#labels td:text('squats')")
    labels = _retry(dev.get, "/api/labels").json()["labels"]
    lab = [x for x in labels if x["label"] == "squats"]
    assert len(lab) == 1 and lab[0]["end"] > lab[0]["start"]
    # predictions drawn as a class band along the chart's timeline, from the stored predictions: the raw rows (the
    # module's device is younger than the 5 minutes shown; its first minute's summary, once there, holds only the
    # minutes that are over: drawn from it, the band covered 57 of 951 pixels on a loaded machine)
    page.wait_for_function("Number(document.querySelector('#histchart').dataset.segments) > 0")
    assert page.get_attribute("#hcover", "data-classes") == "raw"
    band = page.evaluate("""() => {
      const u = hist.plot, px = devicePixelRatio || 1, x0 = Math.round(u.bbox.left);
      const y = Math.round(u.bbox.top + u.bbox.height - BAND * px / 2);
      const d = u.ctx.getImageData(x0, y, Math.round(u.bbox.width), 1).data;
      const want = new Set(hist.segs.map((s) => classColor(s.k)));
      const hex = (i) => "#" + [d[i], d[i + 1], d[i + 2]].map((v) => v.toString(16).padStart(2, "0")).join("");
      const spans = hist.segs.map((s) => xspan(u, s.t0, s.t1)).filter((x) => x);
      let n = 0, inside = 0, outside = 0;
      for (let i = 0; i < d.length; i += 4) {
        const x = x0 + i / 4 + 0.5, on = want.has(hex(i));
        if (spans.some((s) => s[0] <= x && x < s[1])) { inside++; if (on) n++; } else if (on) outside++;
      }
      return { n, inside, outside, width: d.length / 4, segs: hist.segs, events: hist.events.map((e) => e.t) };
    }""")
    # the band's colours are on the canvas where the segments are (an event marker crosses it here and there), and
    # nowhere else; the segments reach back to the first stored prediction shown
    assert band["segs"] and band["inside"] > 0 and band["n"] >= 0.9 * band["inside"] - 2 * len(band["events"]), band
    assert band["outside"] <= 2 * len(band["segs"]), band
    # every stored prediction of the chart's range lies on a segment (but the first 10 s of a range of "the last 5
    # minutes": the page asked for them a moment after its clock read them)
    r0, r1 = page.evaluate("hist.range")
    ts = [int(t) for t in _retry(dev.get, "/api/resources/predictions/data?format=csv&columns=t&start={}&end={}".format(
        int(r0), band["segs"][-1]["t1"] - 1)).body.split()[1:]]
    ts = [t for t in ts if t >= r1 - 290000]
    assert ts and all(any(sg["t0"] <= t < sg["t1"] for sg in band["segs"]) for t in ts), (band, ts)
    stored = _retry(dev.get, "/api/resources/predictions/data?format=csv&start=-300000").body.decode()
    stored_classes = {int(line.split(",")[1]) for line in stored.strip().split("\n")[1:]}
    assert stored_classes and {sg["k"] for sg in band["segs"]} <= stored_classes | {None}, (band, stored_classes)
    assert band["segs"][0]["t0"] < band["segs"][-1]["t1"]
    # the rule (what the store holds, as /api/resources says): a summary is drawn only where it holds a whole
    # period before the raw rows begin
    picks = page.evaluate("""() => {
      const keep = hist.cov, now = Date.now(), m = (t) => t - (t % 60000), pick = (cov, span) => {
        hist.cov = cov; try { return predResolution(span, now); } finally { hist.cov = keep; } };
      const young = { predictions: { start: now - 100000 }, predictions_1m: { start: m(now - 100000) }, predictions_1h: { start: null } };
      const aged = { predictions: { start: now - 100000 }, predictions_1m: { start: m(now - 400000) }, predictions_1h: { start: null } };
      return [pick(young, 300000), pick(aged, 300000), pick(aged, 60000)];
    }""")
    assert picks == ["raw", "1m", "raw"], picks
    classes = _retry(dev.get, "/api/model").json()["active"]["classes"]
    legend = page.text_content("#hlegend")
    assert any(c in legend for c in classes + ["unknown"]), legend
    # event markers: the stored events of the range as History loaded them (at least those stored before it
    # loaded; the sampler goes on, so more may be stored since: the page's are a run of the stored ones)
    events = [e["t"] for e in _retry(dev.get, "/api/events?start=-300000").json()]
    assert min(200, len(before)) <= len(band["events"]) <= 200, (band["events"], before)
    k = events.index(band["events"][0]) if band["events"] else 0  # (the page keeps the newest 200)
    assert band["events"] == events[k:k + len(band["events"])], (band["events"], events)
    # the label: a band of its own along the top of the chart, in the label's colour (not the predictions')
    page.wait_for_function("Number(document.querySelector('#histchart').dataset.labels) === 1")
    top = page.evaluate(LABEL_BAND_PIXELS, "squats")
    assert top["box"] and top["share"] > 0.9, top
    assert top["color"] not in page.evaluate("PALETTE"), top
    assert "label: squats" in page.text_content("#hlegend")
    # duration and sample count in the table, as the device counts them
    row = "#labels tr[data-id='{}']".format(lab[0]["id"])
    n = _count_rows(dev, lab[0]["start"], lab[0]["end"])
    assert n > 50
    page.wait_for_function("document.querySelector(\"{} td.samples\").textContent === '{}'".format(row, n))
    dur = page.eval_on_selector_all(row + " td", "els => els.map(e => e.textContent)")[2]
    assert re.fullmatch(r"\d+(\.\d)? s|\d+ min \d\d s", dur) and dur != "0.0 s", dur
    # the sound level history, in dB(A) over time
    page.wait_for_function("Number(document.querySelector('#sndchart').dataset.points) > 0")
    assert page.evaluate("hist.snd.axes.map((a) => a.label)") == ["time", "sound level (dB(A))"]
    assert page.evaluate("hist.snd.series.map((s) => s.label)") == ["time", "Leq", "Lmin", "Lmax", "L90"]
    assert page.evaluate("hist.plot.axes[1].label") == "acceleration (g)"
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


LABEL_BAND_PIXELS = """(name) => {
  const u = hist.plot, px = devicePixelRatio || 1, b = (u.labelBoxes || []).find((x) =>
    hist.labels.some((l) => l.id === x.id && l.label === name));
  if (!b) return { box: null };
  const x0 = Math.ceil(b.x0), w = Math.floor(b.x1) - x0, y = Math.round(u.bbox.top + px);
  const d = u.ctx.getImageData(x0, y, w, 1).data;
  const hex = (i) => "#" + [d[i], d[i + 1], d[i + 2]].map((v) => v.toString(16).padStart(2, "0")).join("");
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (hex(i) === b.color) n++;
  return { box: [b.x0, b.x1], color: b.color, share: n / (d.length / 4) };
}"""


def test_overlapping_labels_are_confirmed_and_the_40_character_rule_holds(ui):
    dev, page, errors = ui
    page.goto(dev.url + "/#history")
    page.wait_for_selector("#histchart .u-over")
    loads = page.evaluate("hist.loads")
    page.click("#hload")
    page.wait_for_function("hist.loads > {}".format(loads))
    assert page.evaluate("hist.labels.length") >= 1
    box = page.wait_for_selector("#histchart .u-over").bounding_box()
    before = _retry(dev.get, "/api/labels").json()["labels"]
    squats = [x for x in before if x["label"] == "squats"][0]
    # a range over the "squats" label: the device refuses it (409) and the page asks
    x0 = page.evaluate("hist.plot.valToPos({} / 1000, 'x') / hist.plot.over.clientWidth".format(squats["end"]))
    _drag(page, box, max(0.05, x0 - 0.15), min(0.98, x0 + 0.1))
    page.wait_for_function("!document.querySelector('#selinfo').textContent.startsWith('none')")
    page.fill("#labelname", "lunges")
    page.click("#labelbtn")
    page.wait_for_selector("#labelconfirm:not([hidden])")
    msg = page.text_content("#overlapmsg")
    assert msg.startswith("This range overlaps label \u201csquats\u201d (") and msg.endswith("). Add it anyway?"), msg
    shot(page, "history-overlap")
    page.click("#overlapno")
    assert page.is_hidden("#labelconfirm")
    assert _retry(dev.get, "/api/labels").json()["labels"] == before  # nothing added
    page.click("#labelbtn")
    page.wait_for_selector("#labelconfirm:not([hidden])")
    page.click("#overlapyes")
    page.wait_for_selector("#labels td:text('lunges')")
    after = _retry(dev.get, "/api/labels").json()["labels"]
    assert [x["label"] for x in after] == [x["label"] for x in before] + ["lunges"]
    # 1 to 40 characters, counted as the API counts them (not UTF-16 units); 41 are refused before sending
    page.fill("#labelname", "x" * 41)
    assert page.is_disabled("#labelbtn") and page.text_content("#labelcount") == "41/40"
    page.fill("#labelname", "   ")
    page.click("#labelbtn")
    assert page.text_content("#labelerr") == "type a label name first"
    emoji = "\U0001F642" * 40
    page.fill("#labelname", emoji)
    assert not page.is_disabled("#labelbtn") and page.text_content("#labelcount") == "40/40"
    _drag(page, box, 0.01, 0.08)
    page.click("#labelbtn")
    page.wait_for_function("hist.labels.length === {}".format(len(after) + 1))
    got = _retry(dev.get, "/api/labels").json()["labels"][-1]
    assert got["label"] == emoji
    assert not errors, errors


def test_touch_selects_a_range_on_a_phone(ui, chromium):
    """At 390 px with a touch screen (Chromium's touch events, sent over CDP): a vertical swipe scrolls and selects
    nothing; a sideways drag selects; a press held still, then dragged, selects; the selection can be labelled."""
    dev = ui[0]
    ctx, page, errors = login(chromium, dev.url, clock=True, viewport={"width": 390, "height": 844}, has_touch=True,
                              is_mobile=True, device_scale_factor=2)
    try:
        for lab in _retry(dev.get, "/api/labels").json()["labels"]:  # a chart without labels: nothing to overlap
            assert _retry(dev.request, "DELETE", "/api/labels/{}".format(lab["id"])).status == 200
        page.goto(dev.url + "/#history")
        over = page.wait_for_selector("#histchart .u-over")
        page.wait_for_function("hist.loads > 0")
        over.scroll_into_view_if_needed()
        cdp = ctx.new_cdp_session(page)
        # The page's clock stands still during the gestures: its 350 ms long-press timer fires when the test moves
        # the clock on (a held press), never because the machine was slow between two touch events.
        page.clock.pause_at(time.time() + 1)

        def touch(kind, x=None, y=None):
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [] if x is None else
                                                  [{"x": x, "y": y, "id": 1, "radiusX": 4, "radiusY": 4}]})

        def swipe(points, hold=0):
            touch("touchStart", *points[0])
            if hold:
                page.clock.run_for(hold)  # a press held still for `hold` ms
            for p in points[1:]:
                touch("touchMove", *p)
            touch("touchEnd")

        box = over.bounding_box()
        x, y, w, h = box["x"], box["y"], box["width"], box["height"]
        scroll0 = page.evaluate("scrollY")
        page.evaluate("window.scrolled = false; document.addEventListener('scrollend', () => (scrolled = true), "
                      "{ once: true })")
        swipe([(x + 0.5 * w, y + 0.7 * h)] + [(x + 0.5 * w, y + 0.7 * h - 12 * k) for k in range(1, 10)])
        assert page.text_content("#selinfo").startswith("none")  # a scroll, not a selection
        page.wait_for_function("scrolled")  # the scroll has ended (its fling may have taken the chart out of view)
        assert page.evaluate("scrollY") > scroll0
        assert page.text_content("#selinfo").startswith("none")
        over.scroll_into_view_if_needed()
        box = over.bounding_box()
        x, y = box["x"], box["y"]
        # sideways drag
        swipe([(x + (0.1 + 0.05 * k) * w, y + 0.5 * h) for k in range(11)])
        page.wait_for_function("!document.querySelector('#selinfo').textContent.startsWith('none')")
        want = page.evaluate("[0.1, 0.6].map((f) => hist.plot.posToVal(f * hist.plot.over.clientWidth, 'x') * 1000)")
        got = page.evaluate("hist.sel")
        assert abs(got[0] - want[0]) < 0.03 * (want[1] - want[0]) * 2 and abs(got[1] - want[1]) < 0.06 * (want[1] - want[0])
        # a press held still, then a drag more down than sideways (without the hold: a scroll)
        swipe([(x + 0.7 * w, y + 0.2 * h)] + [(x + (0.7 - 0.03 * k) * w, y + (0.2 + 0.08 * k) * h) for k in range(1, 9)],
              hold=1000)
        page.wait_for_function("hist.sel[0] < hist.plot.posToVal(0.5 * hist.plot.over.clientWidth, 'x') * 1000 && "
                               "hist.sel[1] > hist.plot.posToVal(0.65 * hist.plot.over.clientWidth, 'x') * 1000")
        sel = page.evaluate("hist.sel")
        page.clock.resume()
        page.fill("#labelname", "touch")
        page.tap("#labelbtn")
        page.wait_for_selector("#labels td:text('touch')")
        lab = [x for x in _retry(dev.get, "/api/labels").json()["labels"] if x["label"] == "touch"]
        assert len(lab) == 1 and abs(lab[0]["start"] - sel[0]) <= 1 and abs(lab[0]["end"] - sel[1]) <= 1
        over.scroll_into_view_if_needed()
        shot(page, "history-touch-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert not errors, errors
    finally:
        ctx.close()


def test_restart_says_so_and_comes_back_to_the_same_page(chromium, tmp_path):
    """Restart from the Health page of a device run by ``sensorbox run`` (which starts it again): the page says
    "Restarting…", waits for the device, and comes back to the Health page, still logged in."""
    out = open(tmp_path / "out.txt", "wb")
    proc, port, st1 = start_run(tmp_path / "var", out, dict(os.environ, SENSORBOX_ADMIN_PASSWORD=ADMIN_PASSWORD))
    url = "http://127.0.0.1:{}".format(port)

    def status():
        with urllib.request.urlopen(url + "/api/status", timeout=5) as r:
            return json.loads(r.read())

    try:
        ctx, page, errors = login(chromium, url)
        page.goto(url + "/#health")
        page.wait_for_selector("#tasks td:text('accel')")
        page.once("dialog", lambda d: d.accept())
        page.click("#restart")
        page.wait_for_selector("#overlay:not([hidden])")
        assert page.text_content("#overlaymsg").startswith("Restarting…")
        shot(page, "restarting")
        page.wait_for_selector("#overlay", state="hidden", timeout=60000)
        page.wait_for_selector("#tasks td:text('accel')")
        assert page.evaluate("location.hash") == "#health" and page.is_hidden("#login") and page.is_visible("#health")
        st2 = status()
        assert st2["time_ms"] - 1000 * st2["uptime_s"] > st1["time_ms"] - 1000 * st1["uptime_s"]  # it booted again
        page.wait_for_function("document.querySelector('#log').textContent.includes('running the default model')")
        shot(page, "health-after-restart")
        assert not errors, errors
        ctx.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        out.close()
    assert "sensorbox: device restarting" in (tmp_path / "out.txt").read_text()


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
    # what the class codes mean: names and descriptions from the model's meta.json
    page.wait_for_selector("#classes td:text('Pendulum')")
    rows = page.eval_on_selector_all("#classes tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => c.textContent))")
    meta = json.load(open(os.path.join(mdir, "meta.json")))
    assert rows == [list(r) for r in zip(meta["classes"], meta["class_names"], meta["class_descriptions"])], rows
    assert "Pendulum (PEN)" in page.text_content("#modelinfo")
    shot(page, "models")
    assert not errors, errors


def _sound_model(d, threshold):
    # one tree on level_mean (the sound features' first): "quiet" below the threshold, "loud" from it
    import hashlib

    from sensorbox.shared import soundfeatures as sf

    csv = "f,{}\r\nc,2\r\nlb,0\r\nl,0\r\nl,1\r\nr,0\r\nn,0,{},-1,-2\r\n".format(len(sf.names()), threshold).encode()
    meta = {"format": 1, "kind": "trees", "sensor": "sound", "feature_version": sf.FEATURE_VERSION,
            "features": list(sf.names()), "channels": 1, "window": sf.WINDOW, "hop": sf.WINDOW_HOP, "rate_hz": 16000,
            "classes": ["quiet", "loud"], "trees": 1, "nodes": 1, "leaves": 2, "csv_bytes": len(csv),
            "csv_sha256": hashlib.sha256(csv).hexdigest()}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.csv"), "wb") as f:
        f.write(csv)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f)
    return d


def test_dashboard_shows_the_sound_class_next_to_the_level(ui, tmp_path):
    # sound.classify off: no sound class on the card; on, with a sound model (pushed to ?sensor=sound), the
    # live stream's soundclass events show the class the simulated microphone's tone gets (~100 dB: "loud");
    # the change is in the recent events as "sound: unknown → loud"
    from sensorbox.host import export

    dev, page, errors = ui
    page.goto(dev.url + "/#dashboard")
    page.wait_for_function("document.querySelector('#leq').textContent.endsWith(' dB(A)')")
    assert page.is_hidden("#sndcls")
    export.push(dev.url, _sound_model(str(tmp_path / "snd"), -1000), ADMIN_PASSWORD)
    assert _retry(dev.put, "/api/config", {"sound.classify": True}).status == 200
    try:
        page.wait_for_function("/^heard: loud · \\d+ %$/.test(document.querySelector('#sndcls').textContent)")
        assert page.is_visible("#sndcls") and page.text_content("#sndcls") == "heard: loud · 100 %"
        page.wait_for_selector("#liveevents li:text('sound: unknown → loud')")  # (stored: shown within 30 s)
        shot(page, "dashboard-sound")
    finally:
        assert _retry(dev.put, "/api/config", {"sound.classify": False}).status == 200
    page.wait_for_function("document.querySelector('#sndcls').hidden")  # (the health poll: every 3 s)
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
            if name == "history":  # (this device records no clips: the table says so)
                page.wait_for_selector("#noclips:has-text('audio clips are off')")
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
    # the module's device has logged a lot by now (its boot lines may have left the log's ring): a setting that
    # restarts the accelerometer logs "sampling 50 Hz" again, newest
    for v in (1, 0):
        r = dev.put("/api/config", {"sim.replay_noise": v})
        assert r.status == 200, r.body
    page.goto(dev.url + "/#health")
    page.wait_for_function("document.querySelector('#log').textContent.includes('sampling 50 Hz')")
    page.wait_for_selector("#tasks td:text('accel')")
    assert "KB free" in page.text_content("#hstatus")
    shot(page, "health")
    assert not errors, errors


def test_history_counts_samples_of_the_newest_labels_and_the_others_on_demand(chromium, tmp_path):
    # each count is an export request the device serves with its export code: the page sends at most
    # AUTO_COUNT (10) of them by itself, one after the other; an older label's count comes with a click
    from conftest import Device

    dev = Device(tmp_path / "dev")
    ctx = None
    try:
        rows = []
        t_end = time.time() + 20
        while len(rows) < 200 and time.time() < t_end:  # 4 s of stored accelerometer data
            time.sleep(0.5)
            rows = _retry(dev.get, "/api/resources/accel/data?format=csv&columns=t&start=-20000").body.split()[1:]
        t0 = int(rows[0])
        for i in range(14):
            r = _retry(dev.post, "/api/labels", {"start": t0 + 250 * i, "end": t0 + 250 * i + 200, "label": "l%d" % i})
            assert r.status == 201, r.body
        ctx, page, errors = login(chromium, dev.url)
        counts = []
        page.on("request", lambda r: counts.append(r.url) if "max_points=2&" in r.url and "columns=t,x" in r.url
                else None)
        page.goto(dev.url + "/#history")
        page.wait_for_function("document.querySelectorAll('#labels tbody tr').length === 14")
        page.wait_for_function("[...document.querySelectorAll('#labels td.samples')].slice(0, 10)"
                               ".every((td) => /^[0-9]+$/.test(td.textContent))")
        assert len(counts) == 10, counts
        cells = page.eval_on_selector_all("#labels td.samples", "els => els.map(e => e.textContent)")
        assert cells[10:] == ["count"] * 4, cells
        labels = _retry(dev.get, "/api/labels").json()["labels"]
        oldest = labels[0]
        row = "#labels tr[data-id='{}']".format(oldest["id"])
        page.click(row + " td.samples button")
        n = _count_rows(dev, oldest["start"], oldest["end"])
        assert n > 0
        page.wait_for_function("document.querySelector(\"{} td.samples\").textContent === '{}'".format(row, n))
        assert len(counts) == 11
        for lab, txt in zip(reversed(labels[-10:]), cells[:10]):  # newest first, as the device counts them
            assert int(txt) == _count_rows(dev, lab["start"], lab["end"]), (lab, txt)
        assert not errors, errors
    finally:
        if ctx is not None:
            ctx.close()
        dev.stop()


def test_settings_group_mqtt_and_webhook_keys_with_write_only_secrets(ui):
    # last in the module: each change of an mqtt.* key restarts the MQTT service, which reshuffles the heap
    dev, page, errors = ui
    show_settings(page, dev)  # (a render that answered late replaced the section the test opened: a flake)
    page.wait_for_selector("#grp-mqtt .field")
    schema = _retry(dev.get, "/api/config/schema").json()["schema"]
    advanced = {d["key"]: d["advanced"] for d in schema}
    # an integration that is off shows its switch; its settings, and webhooks 2 and 3, are closed sub-sections
    assert page.eval_on_selector_all("#grp-webhook details.sub", "els => els.map(e => e.open)") == [False] * 3
    assert page.eval_on_selector_all("#grp-mqtt details.more", "els => els.map(e => e.open)") == [False]
    assert page.is_visible("#cfg-mqtt\\.enabled") and page.is_hidden("#cfg-mqtt\\.host")
    page.click("#grp-mqtt details.more summary")
    # two renders at once (the page shown twice): the older one's answers paint nothing; the open section stays open
    seq, loads = page.evaluate("[cfgState.seq, cfgState.loads]")
    page.evaluate("route(); route()")
    page.wait_for_function("cfgState.seq >= {} && cfgState.shown === cfgState.seq".format(seq + 2))
    assert page.evaluate("cfgState.loads") == loads + 1
    assert page.eval_on_selector_all("#grp-mqtt details.more", "els => els.map(e => e.open)") == [True]
    for prefix in ("mqtt", "webhook"):
        keys = [d["key"] for d in schema if d["key"].split(".")[0] == prefix]
        assert keys, prefix
        shown = page.eval_on_selector_all("#grp-{} .field".format(prefix), "els => els.map(e => e.dataset.key)")
        # every key of the group, from the schema, in its order; the advanced ones in the Advanced section
        assert shown == [k for k in keys if not advanced[k]], (prefix, shown)
        assert page.eval_on_selector_all("#adv-{} .field".format(prefix), "els => els.map(e => e.dataset.key)") == \
            [k for k in keys if advanced[k]]
        for d in schema:
            if d["key"] in keys:  # with its help text
                help_text = page.text_content(".field[data-key='{}'] .help".format(d["key"]))
                assert help_text and help_text.split(" (")[0][1:] in d["help"], d["key"]  # its "MQTT: " prefix dropped
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
    show_settings(page, dev)
    # rendered again from the device: the section opened before is still open (a user's open sections stay open)
    assert page.eval_on_selector_all("#grp-mqtt details.more", "els => els.map(e => e.open)") == [True]
    page.wait_for_selector(sel + " .secret")
    page.wait_for_function("document.querySelector(\"{} .secret\").textContent === 'set'".format(sel))
    assert page.input_value("#cfg-mqtt\\.password") == ""
    assert "hunter2-secret" not in page.content()
    shot(page, "settings-integrations")
    page.click(sel + " button:text('Clear')")
    page.wait_for_function("document.querySelector(\"{} .secret\").textContent === 'not set'".format(sel))
    assert _retry(dev.get, "/api/config").json()["config"]["mqtt.password"] == {"set": False}
    assert not errors, errors
