"""History over hours the raw data no longer covers (issue 16), in real headless Chromium against the device app: a
store seeded with three hours of sound levels and classes (small raw budgets: the raw rows of most of them are gone,
their per-minute and per-hour summaries kept) and five minutes of labelled accelerometer data over its budget. The
page says where raw data ends and shades the chart there, draws sound levels and classes from the summaries, warns
that labelled data fill the budget, and lets the label be unpinned."""

import json
import os
import subprocess
import time

from conftest import REPO, Device, retry_503 as _retry
from test_browser_ui import chromium, login, shot  # noqa: F401 (chromium: a fixture)

from sensorbox.host import bundle

SEED = os.path.join(REPO, "tests", "host", "store_seed.py")


def test_history_beyond_raw_data_uses_summaries_and_says_so(chromium, tmp_path):  # noqa: F811
    data = tmp_path / "dev"
    data.mkdir()
    (data / "config.json").write_text(json.dumps({"store.soundlevel_kb": 8, "store.predictions_kb": 8,
                                                  "store.accel_kb": 16}))
    now = int(time.time() * 1000)
    env = bundle.micropython_env(bundle.build("unix"))
    r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=512wK", SEED, str(data), str(now)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("seeded"), r.stdout + r.stderr
    dev = Device(data)
    try:
        res = {x["name"]: x for x in _retry(dev.get, "/api/resources").json()["resources"]}
        assert res["soundlevel_1m"]["start"] <= now - 3 * 3600000 + 120000 and res["accel"]["start"] >= now - 600000
        ctx, page, errors = login(chromium, dev.url)
        page.goto(dev.url + "/#history")
        page.wait_for_function("document.querySelector('#hinfo').textContent.includes('points')")
        page.select_option("#hrange", "21600000")  # 6 hours
        page.wait_for_function("document.querySelector('#hcover').dataset.classes === '1m'")
        cover = page.text_content("#hcover")
        assert "raw accelerometer data only since" in cover and "16 KB budget" in cover, cover
        assert "sound levels: per-minute summaries" in cover and "classes: per-minute summaries" in cover, cover
        got = page.evaluate("({range: hist.range, rawFrom: hist.rawFrom, segs: hist.segs.length,"
                            " names: hist.segs.map((s) => className(s.k))})")
        assert abs(got["range"][0] - (now - 3 * 3600000)) < 180000, got["range"]  # from the oldest summary
        assert got["rawFrom"] >= now - 600000 and got["segs"] > 10, got
        assert {"walk", "run", "sit", "jump"} <= set(got["names"]), set(got["names"])
        legend = page.text_content("#hlegend")
        assert "walk" in legend and "jump" in legend, legend
        # the chart is shaded where no raw data is stored (most pixels of a row across that stretch: a grid line
        # crosses it where the axis' ticks fall, which moves with the time the test runs)
        shade = page.evaluate("""() => {
          const u = hist.plot, x = Math.round(u.bbox.left + u.bbox.width * 0.25), w = Math.round(u.bbox.width * 0.1);
          const d = u.ctx.getImageData(x, Math.round(u.bbox.top + u.bbox.height * 0.35), w, 1).data;
          const out = [];
          for (let i = 0; i < d.length; i += 4) out.push([d[i], d[i + 1], d[i + 2]]);
          return out;
        }""")
        n = sum(1 for c in shade if c == [0xee, 0xf0, 0xf4])
        assert n >= len(shade) * 0.8, shade
        assert int(page.evaluate("document.querySelector('#sndchart').dataset.points")) > 100
        # labelled data fill the accel budget: said, with what to do
        page.wait_for_selector("#hpins:not([hidden])")
        assert "accel" in page.text_content("#hpins") and "sensorbox pull" in page.text_content("#hpins")
        row = page.wait_for_selector("#labels tr:has(td:text('walk'))")
        assert "kept until pulled" in row.text_content()
        shot(page, "history-summaries")
        row.query_selector("button:text('Unpin')").click()
        page.wait_for_selector("#labels tr:has(td:text('walk')) td.kept .ktext:text('may age out')")
        assert [x["pinned"] for x in _retry(dev.get, "/api/labels").json()["labels"]] == [False]
        page.select_option("#hrange", "604800000")  # 7 days: classes per hour
        page.wait_for_function("document.querySelector('#hcover').dataset.classes === '1h'")
        assert "classes: per-hour summaries" in page.text_content("#hcover")
        assert page.evaluate("hist.segs.length") > 0
        # what each budget buys, next to it on the Settings page (the device's bytes a day, as stored)
        page.goto(dev.url + "/#settings")
        page.wait_for_selector(".field[data-key='store.soundlevel_1m_kb'] .buys")
        buys = page.text_content(".field[data-key='store.soundlevel_1m_kb'] .buys")
        assert buys.startswith(" Holds about ") and "a day" in buys and "stored" in buys, buys
        assert not errors, errors
        ctx.close()
    finally:
        dev.stop()
