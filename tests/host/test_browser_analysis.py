"""The Analysis page in real headless Chromium: MicroPython WebAssembly (in Web Workers) re-runs the device's analysis
on what the device stored, and gives exactly the device's predictions over a 10.5-minute range; every control;
`sensorbox ui` serving the page for a device without the runtime (CORS, its own Authorization header).

The device's store is filled in seconds by the device's own sampler, pipeline and store code on the unix port
(tests/support/fast_store.py: 12 minutes with a sampling gap and a restart of its analysis), then the device app
is started on it. Screenshots (desktop and 390 px) go to test-artifacts/; no timing is asserted (the bench has it)."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest
from conftest import REPO, Device, free_port, retry_503 as _retry
from test_browser_ui import chromium, login, shot  # noqa: F401 - the chromium fixture

from sensorbox.host import bundle, ui

MINUTES = 12
GAP_S, RESTART_S = 200, 400  # into the stored range: a sampling gap, then a restart of the device's analysis
pytestmark = pytest.mark.slow  # (and so the Chromium tests, one group: they start first)


def fill_store(data_dir, t0, minutes=MINUTES, gap_s=GAP_S, restart_s=RESTART_S):
    out = bundle.build("unix")
    env = bundle.micropython_env(out, {"SENSORBOX_REPLAY": os.path.join(REPO, "data", "watch_excerpt.npy")},
                                 path=(os.path.join(REPO, "tests", "support"),))
    res = subprocess.run([bundle.micropython_path(), os.path.join(REPO, "tests", "support", "fast_store.py"),
                          str(data_dir), str(minutes), str(t0), str(gap_s) if gap_s else "-",
                          str(restart_s) if restart_s else "-"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("windows "), res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def an(tmp_path_factory, chromium):  # noqa: F811
    data = tmp_path_factory.mktemp("analysis-device")
    t0 = int(time.time() * 1000) - MINUTES * 60000 - 3000
    fill_store(data, t0)
    www = os.path.join(bundle.build("unix", analysis=True), "www")
    dev = Device(data, env={"SENSORBOX_WWW": www})
    ctx, page, errors = login(chromium, dev.url)
    console = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(60000)
    yield dev, t0, page, errors, console
    ctx.close()
    dev.stop()


def local(ms):
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%dT%H:%M:%S")


def runs(page):
    return page.evaluate("Number(document.querySelector('#analysis').dataset.runs || 0)")


def settled(page, before):
    """Wait until an analysis after ``before`` finished and nothing else is under way (the page's state)."""
    page.wait_for_function("(n) => Number(document.querySelector('#analysis').dataset.runs || 0) > n && "
                           "document.querySelector('#analysis').dataset.state === 'idle'", arg=before, timeout=180000)


def idle(page):
    page.wait_for_function("document.querySelector('#analysis').dataset.ready === '1' && "
                           "document.querySelector('#analysis').dataset.state === 'idle' && "
                           "Number(document.querySelector('#analysis').dataset.runs || 0) > 0", timeout=180000)


def load_range(page, a, b):
    idle(page)  # the page's own first analysis (the last 10 minutes) is done
    n = runs(page)
    page.select_option("#anrange", "custom")
    page.fill("#anfrom", local(a))
    page.fill("#anto", local(b))
    page.click("#anloadbtn")
    settled(page, n)


def test_parity_with_the_device_over_ten_minutes(an):
    dev, t0, page, errors, console = an
    page.goto(dev.url + "/#analysis")
    page.wait_for_function("document.querySelector('#analysis').dataset.ready === '1'")
    print("MicroPython ready {:.0f} ms after the Analysis page opened".format(page.evaluate("AN.bootMs")))
    assert "MicroPython" in page.text_content("#anstate")
    a, b = t0 + 60000, t0 + 60000 + 630000  # 10.5 minutes, the sampling gap and the restart inside
    load_range(page, a, b)
    assert "2 gap-free stretches" in page.text_content("#aninfo"), page.text_content("#aninfo")
    par = page.eval_on_selector("#anparity", "p => [p.dataset.same, p.dataset.total, p.textContent, p.className]")
    same, total = int(par[0]), int(par[1])
    assert same == total >= 480, par  # 10.5 min at 50 Hz, hop 64: ~492 windows
    assert "100 %" in par[2] and "restarted 1×" in par[2] and par[3] == "parity ok", par
    # independently of the page's own check: the browser's classes and confidences against the stored predictions
    got = page.evaluate("""() => { const r = AN.res, D = AN.data, A = r.models.A;
      return Array.from(r.ends, (e, i) => [D.base + D.times[e], A.cls[i], A.conf[i]]); }""")
    a, b = page.evaluate("[AN.data.from, AN.data.to]")  # the inputs' whole seconds
    assert b - a >= 600000
    stored = np.load(io.BytesIO(_retry(dev.get, "/api/resources/predictions/data?format=npy&start={}&end={}".format(
        a, b)).body))
    want = {int(r["t"]): (int(r["class"]), int(r["confidence"])) for r in stored}
    mine = {t: (c, k) for t, c, k in got if a <= t < b}
    assert len(want) == len(mine) == total and mine == want, (sorted(set(want) ^ set(mine)), a, b)
    assert len(set(c for c, _ in want.values())) >= 3  # the recording goes through several classes
    # the workers' heaps did not grow: the features (~300 KB of garbage a window) were computed in steps, with
    # garbage collected between them (this runtime never collects inside a call)
    heaps = page.evaluate("Promise.all(AN.pool.map((p) => p.call('heap').then((r) => [p.info.heap, r.result.bytes])))")
    assert len(heaps) >= 1 and all(now == boot for boot, now in heaps), heaps
    # the timeline: the device's band and the browser's are the same segments
    bands = page.evaluate("bandRows().map((r) => r.segs ? r.segs.map((s) => [s.k, s.t0, s.t1]) : null)")
    assert len(bands) == 3 and bands[0] == bands[1] and len(bands[0]) > 3
    shot(page, "analysis")
    assert not errors and not console, (errors, console)


def test_every_control(an):
    dev, t0, page, errors, console = an
    page.goto(dev.url + "/#analysis")
    page.wait_for_function("document.querySelector('#analysis').dataset.ready === '1'")
    a, b = t0 + 60000, t0 + 60000 + 630000
    if page.evaluate("!AN.data || AN.data.from !== {}".format(a)):
        load_range(page, a, b)
    total = int(page.get_attribute("#anparity", "data-total"))
    # labels on the stored range, named by the model's class codes and one free name
    classes = _retry(dev.get, "/api/model").json()["active"]["classes"]
    res = page.evaluate("(() => { const r = AN.res, D = AN.data, A = r.models.A; return Array.from(r.ends, "
                        "(e, i) => [D.base + D.times[e], A.cls[i]]); })()")
    first, last = {}, 0
    for t, c in res:  # a window of each of three classes, 30 s or more apart
        if c >= 0 and c not in first and t > max(a, last) + 30000:
            first[c] = last = t
    assert len(first) >= 3, first
    made = []
    for c, t in list(first.items())[:3]:
        body = {"start": t - 8000, "end": t + 8000, "label": classes[c]}
        r = _retry(dev.post, "/api/labels", body)
        assert r.status == 201, r.body
        made.append(body)
    assert _retry(dev.post, "/api/labels", {"start": b - 60000, "end": b - 30000, "label": "resting"}).status == 201
    n = runs(page)
    page.click("#anloadbtn")  # again: with the new labels
    settled(page, n)
    page.wait_for_function("AN.data.labels.length === 4")

    # smoothing and threshold: only the post-processing runs again; parity is not claimed for other settings
    n = runs(page)
    page.fill("#ansmooth", "1")
    page.press("#ansmooth", "Tab")
    settled(page, n)
    assert "differ from its own" in page.text_content("#anparity") and "smooth 1 (device 3)" in page.text_content("#anparity")
    n = runs(page)
    page.fill("#anthr", "900")
    page.press("#anthr", "Tab")
    settled(page, n)
    unknown = page.evaluate("Array.from(AN.res.models.A.cls).filter((c) => c < 0).length")
    assert unknown > 0
    # hop, then window: new windows, features computed for them (hop 256 is cut to the window, 128, at first)
    n = runs(page)
    page.fill("#anhop", "256")
    page.press("#anhop", "Tab")
    settled(page, n)
    assert page.evaluate("AN.res.s.hop === 128 && !AN.res.device")
    n = runs(page)
    page.select_option("#anwin", "256")
    settled(page, n)
    assert page.evaluate("AN.res.s.window === 256 && AN.res.s.hop === 256")
    assert 0 < page.evaluate("AN.res.n") < total / 3
    # the device's settings back: parity again, from the cached features and votes
    n = runs(page)
    page.click("#andevice")
    settled(page, n)
    assert page.get_attribute("#anparity", "data-same") == page.get_attribute("#anparity", "data-total") == str(total)

    # another model: local files (the shipped model's), compared with the device's active one (the same model)
    mdir = os.path.join(REPO, "models", "default")
    for sel in ("#anmodel", "#anmodelB"):  # nothing uploaded, nothing staged: neither is offered
        assert page.eval_on_selector_all(sel + " option[value=previous], " + sel + " option[value=staged]",
                                         "os => os.map((o) => o.disabled)") == [True, True]
    for slot, sel in (("A", "#anmodel"), ("B", "#anmodelB")):  # B: the same files again, to compare
        page.select_option(sel, "file")
        page.wait_for_selector("#anfile{}:not([hidden])".format(slot))
        page.set_input_files("#anmeta" + slot, os.path.join(mdir, "meta.json"))
        n = runs(page)
        page.set_input_files("#ancsv" + slot, os.path.join(mdir, "model.csv"))
        settled(page, n)
        assert page.evaluate("AN.res.models.{}.m.which".format(slot)) == "file"
    assert "checked with its active model" in page.text_content("#anparity")
    n = runs(page)
    page.select_option("#anmodelB", "active")
    settled(page, n)
    assert page.evaluate("AN.res.models.A.cls.every((c, i) => c === AN.res.models.B.cls[i])")
    assert page.evaluate("bandRows().map((r) => r.name)") == ["browser", "compare", "labels"]  # no device band
    page.click("#antabs button[data-tab=eval]")
    page.wait_for_function("document.querySelector('#anevalbox').dataset.models === '2'")
    assert "agree on {} of {} windows (100.0 %)".format(total, total) in page.text_content("#anevalbox .agree")
    shot(page, "analysis-compare")
    n = runs(page)
    page.select_option("#anmodel", "active")
    settled(page, n)
    n = runs(page)
    page.select_option("#anmodelB", "none")
    settled(page, n)
    n = runs(page)
    page.click("#anrun")
    settled(page, n)
    assert page.get_attribute("#anparity", "data-same") == str(total)

    # the tabs
    page.click("#antabs button[data-tab=spec]")
    page.wait_for_function("Number(document.querySelector('#anspec').dataset.columns) > 100")
    cols = page.get_attribute("#anspec", "data-columns")
    page.select_option("#anspecsig", "0")
    page.wait_for_function("document.querySelector('#anspecinfo').textContent.startsWith('x:')")
    assert page.get_attribute("#anspec", "data-columns") == cols
    shot(page, "analysis-spectrogram")
    page.click("#antabs button[data-tab=feat]")
    page.wait_for_function("Number(document.querySelector('#anfeatchart').dataset.series) === 2")
    page.select_option("#anfeats", ["am_mean", "grav_z", "am_domf"])
    page.wait_for_function("Number(document.querySelector('#anfeatchart').dataset.series) === 3")
    page.click("#antabs button[data-tab=dist]")
    page.wait_for_function("Number(document.querySelector('#andistchart').dataset.groups) === 4")
    page.select_option("#andistfeat", "am_domf")
    page.wait_for_function("document.querySelector('#andistchart .u-legend') && document.querySelector('#andistchart')"
                           ".textContent.includes('am_domf')")
    shot(page, "analysis-distributions")
    page.click("#antabs button[data-tab=eval]")
    page.wait_for_selector("#anevalbox table.confusion")
    assert page.get_attribute("#anevalbox", "data-models") == "1"
    rows = page.eval_on_selector_all("#anevalbox table.confusion tr", "trs => trs.map(tr => tr.cells[0].textContent)")
    assert rows[1:] == [m["label"] for m in made] + ["resting"], rows
    # the labels named after classes: their windows are mostly that class (the device stored it so)
    recall = page.eval_on_selector_all("#anevalbox table.scores tr", "trs => trs.slice(1).map(tr => tr.cells[2].textContent)")
    assert recall and all(x.endswith("%") for x in recall)
    shot(page, "analysis-evaluation")

    # label assist: proposals from runs of one class; reject one, edit and accept one, accept the rest
    page.click("#antabs button[data-tab=assist]")
    page.fill("#anmin", "15")
    page.click("#anpropose")
    page.wait_for_function("document.querySelector('#anpropinfo').textContent !== ''")
    props = page.evaluate("AN.props.map((p) => [p.start, p.end, p.state])")
    fresh = [p for p in props if p[2] == "proposed"]
    assert len(fresh) >= 3 and any(p[2] == "overlaps" for p in props), props
    assert all(p[1] - p[0] >= 15000 for p in props)
    before = len(_retry(dev.get, "/api/labels").json()["labels"])
    rows = page.query_selector_all("#anprops tbody tr")
    idx = [i for i, p in enumerate(props) if p[2] == "proposed"]
    rows[idx[0]].query_selector("button:text('Reject')").click()
    rows[idx[1]].query_selector("input").fill("my-run")
    rows[idx[1]].query_selector("button:text('Accept')").click()
    page.wait_for_function("(i) => AN.props[i].state === 'accepted'", arg=idx[1])
    page.click("#anacceptall")
    page.wait_for_function("!AN.props.some((p) => p.state === 'proposed')")
    after = _retry(dev.get, "/api/labels").json()["labels"]
    assert len(after) == before + len(fresh) - 1
    mine = [x for x in after if x["label"] == "my-run"]
    assert len(mine) == 1 and [mine[0]["start"], mine[0]["end"]] == props[idx[1]][:2], (mine, props[idx[1]])
    assert "stored as label #" in rows[idx[1]].text_content()
    shot(page, "analysis-label-assist")

    # a selection on the chart: the Python cell and the export take it
    over = page.query_selector("#antimeline .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    page.wait_for_function("AN.sel !== null")
    sel = page.evaluate("AN.sel")

    # the Python cell: output, a plot, an error's traceback, a runaway loop stopped
    page.click("#antabs button[data-tab=py]")
    page.fill("#ancode", "print(len(x), len(ft), len(features['am_std']), classes[0])\n"
              "print(min(t) >= {} and max(t) <= {})\nplot(ft, features['am_std'], title='am_std', labels=['am_std'])"
              .format(int(sel[0]) - 1, int(sel[1]) + 1))
    page.click("#anpyrun")
    page.wait_for_function("document.querySelector('#anpystate').textContent === 'done'")
    out = page.text_content("#anpyout").split("\n")
    nx, nft, nfe, c0 = out[0].split()
    assert 1000 < int(nx) < 30000 and int(nft) == int(nfe) > 10 and c0 == classes[0] and out[1] == "True", out
    page.wait_for_selector("#anpyplots .u-wrap")
    shot(page, "analysis-python")
    page.fill("#ancode", "def f(v):")
    page.press("#ancode", "Enter")
    page.press("#ancode", "Tab")  # the editor indents (Tab does not leave it)
    page.keyboard.type("return v / 0")
    page.press("#ancode", "Enter")
    page.keyboard.type("f(x[0])")
    assert page.input_value("#ancode") == "def f(v):\n    return v / 0\nf(x[0])"
    page.press("#ancode", "Control+Enter")
    page.wait_for_function("document.querySelector('#anpystate').textContent === 'error'")
    tb = page.text_content("#anpyout")
    assert "Traceback" in tb and "ZeroDivisionError" in tb and "in f" in tb, tb
    page.fill("#ancode", "print('spinning')\nwhile True:\n    pass")
    page.click("#anpyrun")
    page.wait_for_function("document.querySelector('#anpyout').textContent.includes('spinning')")
    assert page.evaluate("1 + 1") == 2  # the page answers while the cell spins (it runs in its own worker)
    page.click("#anpystop")
    page.wait_for_function("document.querySelector('#anpystate').textContent.startsWith('stopped')")
    page.fill("#ancode", "print(sum(pred) is not None)")
    page.click("#anpyrun")
    page.wait_for_function("document.querySelector('#anpystate').textContent === 'done'")
    assert page.text_content("#anpyout").strip() == "True"

    # export: the selection's windows as .npy and CSV (with features and predictions), the raw samples
    page.click("#antabs button[data-tab=export]")
    with page.expect_download() as d:
        page.click("#anexpnpy")
    w = np.load(d.value.path())
    assert w.dtype.names[:4] == ("t", "label", "device_class", "device_confidence") and "am_std" in w.dtype.names
    assert len(w) > 10 and sel[0] <= w["t"].min() and w["t"].max() <= sel[1] + 1
    assert list(w["device_class"]) == list(w["a_class"]) and list(w["device_confidence"]) == list(w["a_confidence"])
    assert 'np.load("sensorbox-windows-' in page.text_content("#ansnippet")
    with page.expect_download() as d:
        page.click("#anexpcsv")
    rows = list(csv.reader(io.StringIO(open(d.value.path()).read())))
    assert rows[0][:6] == ["t", "label", "device_class", "device_confidence", "a_class", "a_confidence"]
    assert len(rows) == len(w) + 1 and rows[1][4] in classes + ["unknown"]
    with page.expect_download() as d:
        page.click("#anexpraw")
    raw = np.load(d.value.path())
    assert raw.dtype.names == ("t", "x", "y", "z") and sel[0] - 1 <= raw["t"][0] and raw["t"][-1] <= sel[1] + 1
    page.click("#anselclear")
    assert page.text_content("#ansel") == "the whole range"

    # Stop: a long computation (hop 8: ~3,900 windows) stopped mid-way; the page goes on working
    page.fill("#anhop", "8")
    page.press("#anhop", "Tab")
    page.wait_for_function("document.querySelector('#anprogmsg').textContent.startsWith('features')")
    page.click("#antabs button[data-tab=spec]")  # the page stays responsive meanwhile
    page.click("#anstop")
    page.wait_for_function("document.querySelector('#anprogmsg').textContent.startsWith('stopped')")
    page.wait_for_function("document.querySelector('#analysis').dataset.busy === '0'")
    n = runs(page)
    page.click("#andevice")
    settled(page, n)
    assert page.get_attribute("#anparity", "data-same") == str(total)
    # a phone
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_function("Number(document.querySelector('#anspec').dataset.columns) > 0")
        shot(page, "analysis-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        wide = page.evaluate("""() => [...document.querySelectorAll('#analysis *')].filter((e) => {
          const r = e.getBoundingClientRect(); return r.width > 0 && r.right > innerWidth + 1 &&
            !e.closest('.scroll, table, pre'); }).map((e) => e.tagName + '#' + e.id + '.' + e.className)""")
        assert not wide, wide
    finally:
        page.set_viewport_size({"width": 1200, "height": 900})
    # the range presets
    n = runs(page)
    page.select_option("#anrange", "600000")
    settled(page, n)
    assert "samples" in page.text_content("#aninfo")
    assert not errors and not console, (errors, console)


def test_model_files_api(an):
    dev = an[0]
    meta = _retry(dev.get, "/api/model/file?which=active&name=meta.json").json()
    with open(os.path.join(REPO, "models", "default", "meta.json")) as f:
        assert meta == json.load(f)
    csv_body = _retry(dev.get, "/api/model/file?which=active&name=model.csv")
    assert csv_body.status == 200 and csv_body.body == open(os.path.join(REPO, "models", "default", "model.csv"), "rb").read()
    assert _retry(dev.get, "/api/model/file?which=staged&name=meta.json").status == 404
    assert _retry(dev.get, "/api/model/file?which=previous&name=meta.json").status == 404  # the default runs
    r = _retry(dev.get, "/api/model/file?which=active&name=../auth.json")
    assert r.status == 400 and r.json()["field"] == "name"
    assert _retry(dev.get, "/api/model/file?which=nope&name=model.csv").status == 400
    assert dev.get("/api/model/file?which=active&name=model.csv", auth=False).status == 401


def test_sensorbox_ui_serves_the_page_for_a_device_without_the_runtime(tmp_path, chromium):  # noqa: F811
    t0 = int(time.time() * 1000) - 3 * 60000 - 3000
    fill_store(tmp_path / "dev", t0, minutes=3, gap_s=60, restart_s=None)
    dev = Device(tmp_path / "dev")  # the tests' usual bundle: no runtime in www, like a 4 MB ESP32
    proc = None
    try:
        # its own UI says how to get the page
        ctx, page, errors = login(chromium, dev.url)
        page.goto(dev.url + "/#analysis")
        page.wait_for_selector("#anremote:not([hidden])")
        assert "sensorbox ui " + dev.url in page.text_content("#anremote")
        assert page.is_hidden("#anrun")
        shot(page, "analysis-no-runtime")
        ctx.close()
        # sensorbox ui: the page from this computer, the device's API through CORS with a token of its own
        port = free_port()
        origin = "http://127.0.0.1:{}".format(port)
        assert ui.cors_state(dev.url, origin) is None
        tok = _retry(dev.post, "/api/tokens", {"name": "ui", "scope": "admin"}).json()["token"]
        proc = subprocess.Popen([sys.executable, "-m", "sensorbox.host.cli", "ui", dev.url, "--port", str(port),
                                 "--token", tok, "--allow-origin", "--no-browser"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines = []
        while not lines or not lines[-1].startswith("sensorbox ui: the Analysis page"):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert "credential: token (admin)" in "".join(lines)
        assert "set the device's http.cors_origin to " + origin in "".join(lines)
        assert tok not in "".join(lines)  # the credential is not printed
        assert ui.cors_state(dev.url, origin) == "write"
        ctx = chromium.new_context(viewport={"width": 1200, "height": 900})
        page = ctx.new_page()
        errors, console = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.set_default_timeout(60000)
        page.goto(ui.page_url(origin, dev.url))  # opened without the credential: the page asks for it
        page.wait_for_selector("#anauth")
        page.fill("#anauth", tok)
        page.click("#anremote button:text('Connect')")
        page.wait_for_function("Number(document.querySelector('#analysis').dataset.runs || 0) > 0")
        page.evaluate("sessionStorage.clear()")
        page.goto("about:blank")
        page.goto(ui.page_url(origin, dev.url, "Bearer " + tok))  # as `sensorbox ui` opens it
        page.wait_for_function("document.querySelector('#analysis').dataset.ready === '1'")
        assert "auth=" not in page.url and page.is_hidden("#anremote")  # the credential left the address at once
        page.wait_for_function("Number(document.querySelector('#analysis').dataset.runs || 0) > 0")
        par = page.eval_on_selector("#anparity", "p => [p.dataset.same, p.dataset.total]")
        assert par[0] == par[1] and int(par[1]) > 80, par
        assert page.is_hidden("#nav a[href='#dashboard']") and page.is_visible("#nav a[href='#analysis']")
        page.click("#antabs button[data-tab=assist]")
        page.fill("#anmin", "10")
        page.click("#anpropose")
        page.wait_for_function("AN.props.length > 0")
        page.click("#anacceptall")
        page.wait_for_function("AN.props.every((p) => p.state !== 'proposed')")
        assert page.evaluate("AN.props.filter((p) => p.state === 'accepted').length") == \
            len(_retry(dev.get, "/api/labels").json()["labels"]) > 0
        shot(page, "analysis-sensorbox-ui")
        assert not errors and not console, (errors, console)
        ctx.close()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0 and "sensorbox ui: stopped" in proc.stdout.read()
        dev.stop()
