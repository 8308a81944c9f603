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


def _cold_modules():
    """{module: {device files that load it}}: every module device code loads with ``lazy.call`` or ``lazy.load``
    (``boot.warm_package`` aside: it imports every module once at boot, for its names). A name is read from the
    call: a string, or a name set to one in the file (a ``const``); for one set otherwise (a parameter, a choice),
    every module named by a string in the file."""
    import ast

    mods = set()
    for d, _, files in os.walk(os.path.join(REPO, "sensorbox")):
        for f in files:
            if f.endswith(".py"):
                m = os.path.relpath(os.path.join(d, f), REPO)[:-3].replace(os.sep, ".")
                mods.add(m[:-len(".__init__")] if m.endswith(".__init__") else m)
    out = {}
    for d, _, files in os.walk(os.path.join(REPO, "sensorbox", "device")):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(d, f), os.path.join(REPO, "sensorbox"))
            tree = ast.parse(_text(os.path.join("sensorbox", rel)))
            named = {}  # name -> the module names it is set to in this file
            strings = set()  # every module named by a string in this file
            imported = set()  # (a module's own ``__import__``: not a load for a while)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
                    imported.update(id(a) for a in node.args)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and node.value in mods and id(node) not in imported:
                    strings.add(node.value)
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    v = node.value
                    if isinstance(v, ast.Call) and getattr(v.func, "id", None) == "const" and v.args:
                        v = v.args[0]
                    if isinstance(v, ast.Constant) and v.value in mods:
                        named.setdefault(node.targets[0].id, set()).add(v.value)
            skip = set()
            for fn in ast.walk(tree):
                if isinstance(fn, ast.FunctionDef) and fn.name == "warm_package":
                    skip.update(id(n) for n in ast.walk(fn))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
                        and node.func.attr in ("call", "load") and getattr(node.func.value, "id", None) == "lazy"
                        and id(node) not in skip):
                    a = node.args[0]
                    if isinstance(a, ast.Constant):
                        got = {a.value}
                    else:
                        got = named.get(getattr(a, "id", None)) or strings
                    assert got and got <= mods, (rel, node.lineno, got)
                    for m in got:
                        out.setdefault(m, set()).add(rel)
    return out


def test_cold_modules_table_lists_what_device_code_loads_for_a_while():
    # docs/architecture.md's "Cold modules": a row per module device code loads for a call and unloads again
    # (device/lazy.py), with the modules that load it; resident code is the rest of what boot imports
    text = _text("docs/architecture.md").split("## Cold modules", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\| `(sensorbox\.[a-z0-9_.]+)` \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = set(re.findall(r"`([a-z0-9_/]+\.py)`", m.group(2)))
    cold = _cold_modules()
    assert sorted(rows) == sorted(cold), ("only in the table:", sorted(set(rows) - set(cold)),
                                          "only in the code:", sorted(set(cold) - set(rows)))
    for m, by in cold.items():
        assert rows[m] == by, (m, "table:", sorted(rows[m]), "code:", sorted(by))
