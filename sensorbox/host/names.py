"""Fewer interned names on the device: the bundle gives private names short ones that modules share.

MicroPython interns every identifier a module uses (and every string literal of up to 10 characters) for good,
in pools that double: past ~1,260 names the unix port allocates a pool for 1,280 more in one ~15 KB block
(README "Heap budget"). Most names are public API, JSON keys or config keys and must stay; but a module's own
private globals (``_route``, ``_pieces``) and a class's own private attributes (``self._ring``) are spelled
nowhere else, so each module's and each class's can be renamed ``_0``, ``_1``, ... : names that every module
then shares. About 200 names fewer for the whole bundle.

Only what is provably private is renamed, checked against every source that MicroPython runs (the device code,
its tests, the benchmark scripts):

- a module-level ``_name`` (function, class, variable; not a ``const()``, not a dunder) that no source uses as
  an attribute, keyword, argument, imported name or string;
- a ``_name`` attribute used only as ``self._name`` inside the methods of one class (a class without base
  classes that is no base either), and nowhere as a plain name, keyword, argument, imported name or string.

Tokens are replaced in place, line by line, so line numbers in tracebacks stay true; function names there read
``_3``: ``bundle.json`` maps them back (``renames``). The map is deterministic (sorted names).
"""

import ast
import io
import os
import tokenize

_SHORT = "_{}"


def _attr_owner(tree):
    """{attribute: set of (class name, is self-access)} for private attributes, and the names of classes that
    have a base or are one."""
    uses = {}
    based = set()

    def visit(node, cls):
        for ch in ast.iter_child_nodes(node):
            c = cls
            if isinstance(ch, ast.ClassDef):
                c = ch.name
                if ch.bases or ch.keywords:
                    based.add(ch.name)
                    for b in ch.bases:
                        if isinstance(b, ast.Name):
                            based.add(b.id)
            if isinstance(ch, ast.Attribute) and _private(ch.attr):
                me = isinstance(ch.value, ast.Name) and ch.value.id == "self"
                uses.setdefault(ch.attr, set()).add((c, me))
            visit(ch, c)

    visit(tree, None)
    return uses, based


def _private(name):
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


def _plain_uses(tree):
    """Names a source uses other than as an attribute: plain names, arguments, keywords, imported names,
    string constants, global/nonlocal declarations."""
    out = set()
    for x in ast.walk(tree):
        if isinstance(x, ast.Name):
            out.add(x.id)
        elif isinstance(x, ast.arg):
            out.add(x.arg)
        elif isinstance(x, ast.keyword) and x.arg:
            out.add(x.arg)
        elif isinstance(x, (ast.Import, ast.ImportFrom)):
            for a in x.names:
                out.add(a.name.split(".")[-1])
                if a.asname:
                    out.add(a.asname)
        elif isinstance(x, ast.Constant) and isinstance(x.value, str):
            out.add(x.value)
        elif isinstance(x, (ast.Global, ast.Nonlocal)):
            out.update(x.names)
    return out


def _module_privates(tree):
    """Private names a module defines at its top level (not const())."""
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            v = n.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const":
                continue  # a const() name with "_" is gone after compilation anyway
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if isinstance(t, ast.Name):
                    out.add(t.id)
    return {x for x in out if _private(x)}


def const_used_early(tree):
    """Names of ``_X = const(...)`` that the module uses before that line: the compiler substitutes a const
    only after its definition, and a ``_``-name const makes no global, so such a use is a NameError at run
    time (it happened: a type table defined after the class that used it)."""
    defs = {}
    for n in tree.body:
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and \
                getattr(n.value.func, "id", "") == "const":
            for t in n.targets:
                if isinstance(t, ast.Name) and _private(t.id):
                    defs.setdefault(t.id, n.lineno)
    bad = []
    for x in ast.walk(tree):
        if isinstance(x, ast.Name) and x.id in defs and x.lineno < defs[x.id]:
            bad.append((x.id, x.lineno))
    return bad


def plan(device_files, other_files):
    """{path: {"globals": {old: new}, "attrs": {old: new}}} for the device sources ``device_files`` (paths),
    checked against every source in ``device_files`` + ``other_files`` (tests, benchmark scripts)."""
    trees = {}
    for p in list(device_files) + list(other_files):
        with open(p) as f:
            trees[p] = ast.parse(f.read(), p)
    for p in device_files:
        for name, line in const_used_early(trees[p]):
            raise ValueError("{}:{}: {} is used before its const() definition".format(p, line, name))
    attr_uses = {}  # attr -> {(path, class, self)}
    plain = {}  # path -> names used plainly
    based = set()
    for p, t in trees.items():
        uses, b = _attr_owner(t)
        based |= b  # by name, across files: a subclass elsewhere shares the attribute namespace
        for a, us in uses.items():
            attr_uses.setdefault(a, set()).update((p, c, me) for c, me in us)
        plain[p] = _plain_uses(t)
    everywhere_plain = set().union(*plain.values()) if plain else set()
    strings = set()  # every string constant (getattr(m, "_x"), globals()["_x"]): such a name stays
    for t in trees.values():
        strings.update(x.value for x in ast.walk(t) if isinstance(x, ast.Constant) and isinstance(x.value, str))
    taken = {p: {x for x in plain[p] if x.startswith("_") and x[1:].isdigit()} for p in device_files}
    out = {}
    for p in device_files:
        t = trees[p]
        g = sorted(x for x in _module_privates(t) if x not in attr_uses and x not in strings and
                   not any(x in plain[q] for q in trees if q != p))
        # (a module-private name used plainly only in its own module; the check above covers every other one)
        attrs = {}
        for a, us in attr_uses.items():
            if a in everywhere_plain:
                continue
            owners = {(q, c) for q, c, me in us}
            if len(owners) != 1 or not all(me for q, c, me in us):
                continue
            q, c = next(iter(owners))
            if q != p or c is None or c in based:
                continue
            attrs.setdefault(c, []).append(a)
        gmap = _assign(g, taken[p])
        amap = {}
        for c in sorted(attrs):
            amap.update(_assign(sorted(attrs[c]), taken[p]))
        if gmap or amap:
            out[p] = {"globals": gmap, "attrs": amap}
    return out


def _assign(names, taken):
    m = {}
    i = 0
    for n in names:
        while _SHORT.format(i) in taken:
            i += 1
        m[n] = _SHORT.format(i)
        i += 1
    return m


def rewrite(source, renames):
    """``source`` with the names of ``renames`` (as ``plan`` gives for it) replaced, line numbers kept."""
    g = renames.get("globals", {})
    a = renames.get("attrs", {})
    lines = source.splitlines(keepends=True)
    edits = {}  # line index -> [(col, old, new)]
    prev = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NAME:
            after_dot = prev is not None and prev.string == "."
            new = None
            if after_dot or (prev is not None and prev.string == "def"):
                new = a.get(tok.string)
                if new is None and not after_dot:
                    new = g.get(tok.string)
            else:
                new = g.get(tok.string)
            if new is not None:
                edits.setdefault(tok.start[0] - 1, []).append((tok.start[1], tok.string, new))
        prev = tok
    for i, es in edits.items():
        line = lines[i]
        for col, old, new in sorted(es, reverse=True):
            assert line[col:col + len(old)] == old, (i, line, old)
            line = line[:col] + new + line[col + len(old):]
        lines[i] = line
    return "".join(lines)
