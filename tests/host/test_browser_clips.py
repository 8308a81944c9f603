"""Audio clips on the History page (issue 18.1), in real headless Chromium against the device app, its microphone
replaying real speech: "Record a clip" records one, History lists it and draws it on the charts, its <audio> element
plays the device's WAV export (through the page's session: a duration > 0, time advancing), and "Select" then "Label
range" labels the clip. A screenshot goes to the test artifacts."""

import json

from conftest import retry_503 as _retry
from test_browser_ui import chromium, login, shot  # noqa: F401 (chromium: a fixture)

CARDS = "/usr/share/pocketsphinx/test/data/cards"


def test_history_lists_a_clip_that_plays_and_can_be_labelled(chromium, device_factory, tmp_path):  # noqa: F811
    d = tmp_path / "dev"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"sim.mic_wav": CARDS, "clip.enabled": True, "clip.length_ms": 2000,
                                               "board.clip_ring_ms": 100, "clip.pre_ms": 100}))
    dev = device_factory(data_dir=d)
    ctx, page, errors = login(chromium, dev.url)
    page.goto(dev.url + "/#history")
    page.wait_for_function("document.querySelector('#hinfo').textContent.includes('points')")
    page.wait_for_selector("#clipbtn:not([disabled])")
    page.click("#clipbtn")
    page.wait_for_function("document.querySelector('#clipinfo').textContent.startsWith('recording')")
    page.wait_for_selector("#clips tbody tr audio", timeout=30000)
    clips = _retry(dev.get, "/api/clips").json()["clips"]
    assert len(clips) == 1 and clips[0]["trigger"] == "demand" and clips[0]["frames"] == 32000, clips
    assert page.evaluate("hist.clips.length") == 1
    # the <audio> element plays the authenticated export: its duration is the clip's, and time runs
    dur = page.evaluate("""() => new Promise((ok, no) => {
      const a = document.querySelector('#clips tbody tr audio');
      const done = () => ok(a.duration);
      if (a.readyState >= 1) done(); else { a.onloadedmetadata = done; a.onerror = () => no(String(a.error && a.error.code)); }
    })""")
    assert 1.9 < dur < 2.1, dur
    played = page.evaluate("""() => new Promise((ok, no) => {
      const a = document.querySelector('#clips tbody tr audio');
      a.muted = true;
      a.ontimeupdate = () => { if (a.currentTime > 0.2) ok(a.currentTime); };
      a.play().catch((e) => no(String(e)));
    })""")
    assert played > 0.2, played
    # "Select" puts the clip's range into the selection; "Label range" labels it; the clip's row names the label
    page.click("#clips tbody tr button:text('Select')")
    page.fill("#labelname", "speech")
    page.click("#labelbtn")
    page.wait_for_selector("#labels tr:has(td:text('speech'))")
    labels = _retry(dev.get, "/api/labels").json()["labels"]
    assert [(x["start"], x["end"], x["label"]) for x in labels] == [(clips[0]["start"], clips[0]["end"], "speech")]
    page.click("#hload")
    page.wait_for_selector("#clips tbody tr td:text('speech')")
    shot(page, "history-clips")
    assert not errors, errors
    ctx.close()
