"""The documentation names what exists: README.md and docs/*.md against the repository.

- every ``sensorbox/...``, ``tests/...``, ``web/...`` path they name exists (also the short forms ``device/x.py``,
  ``store/x.py``, ... that the text uses for modules, and bare module names such as ``outbox.py``);
- every ``make`` target they name is a target of the Makefile;
- docs/architecture.md's layout lists every module under ``sensorbox/`` and nothing that is not there.

So a module moved or renamed, or a make target dropped, fails here until the docs say so."""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(REPO, "docs")) if f.endswith(".md"))
#: where a short path (``store/core.py``, ``http/server.py``, ``support/x.py``) may be found
ROOTS = ("", "sensorbox", "sensorbox/device", "sensorbox/shared", "sensorbox/host", "tests", "tests/host",
         "tests/support", "docs")
#: files the docs name that belong to other projects (MicroPython, emlearn, their examples) or live on a device
FOREIGN = {"makemanifest.py", "manifestfile.py", "mpy-tool.py", "mpy_ld.py", "emlearn_trees.py", "har_live.py",
           "har_trees.py", "timebased.py", "soundlevel.py", "soundlevel_file.py", "soundlevel_live.py",
           "test_recorder.py", "boot.py", "main.py"}


def _text(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        return f.read()


def _exists(rel):
    rel = rel.rstrip("/")
    return any(os.path.exists(os.path.join(REPO, root, rel)) for root in ROOTS)


def _module_names():
    names = set(os.listdir(REPO))
    for top in ("sensorbox", "tests", "bench", "web", "docs", "scripts"):
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            names.update(files)
    return names


@pytest.mark.parametrize("doc", DOCS)
def test_paths_named_exist(doc):
    text = _text(doc)
    missing = []
    # paths with a directory: sensorbox/..., tests/..., web/..., device/x.py, store/core.py, ...
    for m in re.finditer(r"(?<![\w./<>-])((?:[a-z_][\w-]*/)+[\w.-]*\.(?:py|mjs|js|html|css|md))\b", text):
        p = m.group(1)
        if p.startswith(("http", "www/", "build/", "var/", "data/", "app/", "store/quarantine", "lib/", "node_modules/",
                         "ports/", "src/", "stubs/", "examples/", "tools/", "py/", "docs/reference", "python-",
                         "micropython/", "emlearn-", "models/mine", "models/recs", "models/snd", "recs/")):
            if not p.startswith(("data/watch", "docs/reference")) or p.startswith("docs/reference"):
                continue
        if "<" in p or "*" in p:
            continue
        if not _exists(p):
            missing.append(p)
    for m in re.finditer(r"`(sensorbox/[\w/.-]+)`", text):  # any sensorbox/ path in code spans, files or folders
        p = m.group(1).rstrip(".")
        if not _exists(p):
            missing.append(p)
    # bare module names: outbox.py, trees_fast.py
    names = _module_names()
    for m in re.finditer(r"(?<![\w./-])([a-z_][\w]*\.py)\b", text):
        if m.group(1) not in names and m.group(1) not in FOREIGN:
            missing.append(m.group(1))
    assert not sorted(set(missing)), "{} names files that do not exist: {}".format(doc, sorted(set(missing)))


def _make_targets():
    targets = set()
    for line in _text("Makefile").split("\n"):
        m = re.match(r"^([a-z][\w-]*)\s*:(?!=)", line)
        if m:
            targets.add(m.group(1))
    return targets


@pytest.mark.parametrize("doc", DOCS)
def test_make_targets_named_exist(doc):
    text = _text(doc)
    named = set(re.findall(r"`make ([a-z][\w-]*)", text))  # in code spans: `make test`, `make bench`
    for block in re.findall(r"```(?:sh)?\n(.*?)```", text, re.S):  # and command lines in shell blocks
        named.update(re.findall(r"(?:^|[;&|]\s*|\$\s*)make ([a-z][\w-]*)", block, re.M))
    missing = sorted(named - _make_targets())
    assert not missing, "{} names make targets the Makefile does not have: {}".format(doc, missing)


def _layout():
    """{path: description} of the tree in docs/architecture.md's "Layout" section."""
    text = _text("docs/architecture.md")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 1)[1].split("```", 1)[0]
    out, stack = {}, []
    for line in block.split("\n"):
        m = re.match(r"^( *)(\S+)( {2,}|$)", line)
        if not m or len(m.group(1)) >= 24 or not (m.group(2).endswith("/") or m.group(2).endswith(".py")):
            continue  # (a description's continuation line)
        depth = len(m.group(1)) // 2
        del stack[depth:]
        stack.append(m.group(2).rstrip("/"))
        out["/".join(stack)] = line
    return out


def test_architecture_layout_lists_every_module():
    layout = _layout()
    modules = set()
    for top in ("sensorbox",):
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    modules.add(os.path.relpath(os.path.join(root, f), REPO))
    unlisted = sorted(modules - set(layout))
    assert not unlisted, "docs/architecture.md's layout does not list {}".format(unlisted)
    gone = sorted(p for p in layout if not os.path.exists(os.path.join(REPO, p)))
    assert not gone, "docs/architecture.md's layout lists what does not exist: {}".format(gone)


def model_rows(doc):
    """{kind: (CV accuracy, test per window, per recording)} of the table rows that start with a `kind`."""
    rows = {}
    num = r" *(\d\.\d+(?: ± \d\.\d+)?) *"
    for m in re.finditer(r"^\| `(forest|knn|baseline)`[^|]*\|{0}\|{0}\|{0}\|$".format(num), _text(doc), re.M):
        rows[m.group(1)] = tuple(c.strip() for c in m.group(2, 3, 4))
    return rows


def test_readme_model_figures_are_those_of_the_datasets_page():
    # issue 17: the README shows the BasicMotions figures next to the scikit-learn baseline; they are the ones
    # docs/datasets.md states for the same split (which tests/host/test_notebook.py reproduces)
    readme, page = model_rows("README.md"), model_rows("docs/datasets.md")
    assert set(readme) == {"forest", "knn", "baseline"} and readme == page, (readme, page)
