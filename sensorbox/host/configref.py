"""The configuration reference, ``docs/configuration.md``, generated from the schema (``shared/config_schema.py``)
and its help texts, labels, units and groups (``shared/config_docs.py``): the one source, so the page cannot drift.

    make config-docs                              # regenerate docs/configuration.md
    python -m sensorbox.host.configref --check    # exit status 1 (and what to run) when it is out of date

``tests/host/test_configref.py`` fails while the committed page differs from what this writes."""

import argparse
import json
import os
import sys

from sensorbox.shared import config_docs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(REPO, "docs", "configuration.md")

_HEAD = """# Configuration reference

<!-- Generated from sensorbox/shared/config_schema.py and sensorbox/shared/config_docs.py by
     `make config-docs` (python -m sensorbox.host.configref): edit those, not this file. -->

The device's configuration is one flat JSON object of dotted keys (`config.json` in its data directory). Read it
with `GET /api/config`, change it with `PUT /api/config` (admin; JSON, any subset of the keys): the whole result
is validated first, and a wrong type, an out-of-range value or an unknown key is refused with
`400 {"error": reason, "field": key}` and nothing changes. Keys apply at once, restarting only the services that
use them, except those marked "after a restart" (listed in `reboot_pending` until then). Secrets are write-only:
the API says only whether they are set. The web UI's Settings page shows the same keys by their labels, the
advanced ones in a closed section. How configuration works on the device: [architecture.md](architecture.md).
"""


def _value(v):
    return "`{}`".format(json.dumps(v, ensure_ascii=False))


def _allowed(d):
    unit = " " + d["unit"] if d["unit"] and d["unit"] != "‰" else d["unit"]
    kind = d["kind"]
    if kind == "choice":
        return "one of " + ", ".join(_value(c) for c in d["choices"])
    if kind in ("int", "float"):
        return "{} to {}{}{}".format(d["min"], d["max"], unit, "" if kind == "int" else " (number)")
    if kind in ("str", "secret"):
        if d["min_length"] == d["max_length"] == 0:
            return "empty"
        return "text, {} to {} characters".format(d["min_length"], d["max_length"])
    return "`true` or `false`"


def _cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def markdown():
    """The reference page as text."""
    keys = config_docs.describe()
    out = [_HEAD]
    for g in config_docs.groups():
        mine = [d for d in keys if d["key"].split(".")[0] == g["prefix"]]
        if not mine:
            continue
        kind = {"integration": " (an integration)", "advanced": " (advanced)"}.get(g["kind"], "")
        out.append("## {}{}\n".format(g["title"], kind))
        out.append("| key | default | allowed | meaning |")
        out.append("|---|---|---|---|")
        for d in mine:
            default = "(write-only secret)" if d["kind"] == "secret" else _value(d["default"])
            notes = []
            if d["apply"] == "reboot":
                notes.append("after a restart")
            if d["advanced"] and g["kind"] != "advanced":
                notes.append("advanced")
            meaning = "**{}**{}. {}".format(d["label"], " ({})".format(", ".join(notes)) if notes else "", d["help"])
            out.append("| `{}` | {} | {} | {} |".format(d["key"], default, _cell(_allowed(d)), _cell(meaning)))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m sensorbox.host.configref", description=__doc__.split("\n\n")[0],
                                epilog="examples:\n  python -m sensorbox.host.configref           # write it\n"
                                       "  python -m sensorbox.host.configref --check   # is it current?",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page is out of date")
    p.add_argument("--out", default=PATH, help="where to write it (default: docs/configuration.md)")
    a = p.parse_args(argv)
    text = markdown()
    try:
        with open(a.out, encoding="utf-8") as f:
            old = f.read()
    except OSError:
        old = None
    if a.check:
        if old != text:
            print("{} is out of date: run `make config-docs`".format(os.path.relpath(a.out)), file=sys.stderr)
            return 1
        return 0
    if old != text:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote", os.path.relpath(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
