"""The web UI's files in the device bundle: gzipped, within the 150 KB budget, no CDN, every page present."""

import gzip
import json
import os
import re

from sensorbox.host import bundle, webassets


def test_ui_assets_gzipped_within_budget_and_local():
    www = os.path.join(bundle.build("unix"), "www")
    total = webassets.asset_bytes(www)
    assert 25 * 1024 < total <= webassets.ASSET_BUDGET, total  # uPlot alone is ~22 KB gzipped
    names = set(os.listdir(www))
    assert {"index.html.gz", "app.js.gz", "app.css.gz", "uplot.js.gz", "uplot.css.gz", "openapi.json.gz"} <= names
    html = gzip.decompress(open(os.path.join(www, "index.html.gz"), "rb").read()).decode()
    for page in ("dashboard", "history", "settings", "models", "health", "login"):
        assert 'id="{}"'.format(page) in html, page
    for name in names:
        if name.endswith((".html.gz", ".js.gz", ".css.gz")):
            text = gzip.decompress(open(os.path.join(www, name), "rb").read()).decode()
            # no CDN: every URL the page loads is the device's own
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name
    # each referenced static file exists
    for ref in re.findall(r'/static/([\w.-]+)', html):
        assert ref + ".gz" in names, ref
    # deterministic: building twice gives the same bytes
    before = open(os.path.join(www, "app.js.gz"), "rb").read()
    webassets.build(www)
    assert open(os.path.join(www, "app.js.gz"), "rb").read() == before


def test_openapi_documents_every_path_with_errors():
    www = os.path.join(bundle.build("unix"), "www")
    spec = json.loads(gzip.decompress(open(os.path.join(www, "openapi.json.gz"), "rb").read()))
    assert spec["openapi"].startswith("3.")
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and "200" in op["responses"], (path, method)
            if op.get("security") != []:
                assert "401" in op["responses"], (path, method)
