"""manifest.py (MicroPython's manifest format) lists exactly what the ESP32 bundle ships.

The manifest is executed as MicroPython's ``tools/manifestfile.py`` executes it: in its own directory, with
``metadata``, ``require``, ``package``, ``module`` and ``include`` as globals (their documented signatures),
here functions that record the calls."""

import os

import sensorbox
from sensorbox.host import bundle

REPO = bundle.REPO


def _run_manifest():
    calls = {"metadata": [], "require": [], "package": [], "module": [], "include": []}

    def metadata(description=None, version=None, license=None, author=None, pypi=None, pypi_publish=None):
        calls["metadata"].append({"description": description, "version": version, "license": license})

    def require(name, version=None, pypi=None, library=None, **kwargs):
        calls["require"].append(name)

    def package(package_path, files=None, base_path=".", opt=None):
        calls["package"].append((package_path, files, base_path))

    def module(module_path, base_path=".", opt=None):
        calls["module"].append((module_path, base_path))

    def include(manifest_path, **kwargs):
        calls["include"].append(manifest_path)

    g = {"metadata": metadata, "require": require, "package": package, "module": module, "include": include}
    cwd = os.getcwd()
    os.chdir(REPO)  # (paths in a manifest are relative to its own directory)
    try:
        with open("manifest.py") as f:
            exec(compile(f.read(), "manifest.py", "exec"), g)
    finally:
        os.chdir(cwd)
    return calls


def _installed(calls):
    """{path on the device: source file} of what the manifest freezes, as manifestfile.py resolves it."""
    out = {}
    for package_path, files, base_path in calls["package"]:
        assert files is not None, "package() without files= would take every .py under it, host code too"
        for f in files:
            out[package_path + "/" + f] = os.path.normpath(os.path.join(REPO, base_path, package_path, f))
    for module_path, base_path in calls["module"]:
        out[module_path] = os.path.normpath(os.path.join(REPO, base_path, module_path))
    return out


def test_manifest_lists_what_the_esp32_bundle_ships():
    calls = _run_manifest()
    got = _installed(calls)
    # What bundle.build("esp32") compiles into lib/ (the same filter), and main.py beside lib/
    want = {rel: os.path.join(REPO, rel) for _, rel in bundle.device_sources(False) if rel not in bundle.NOT_ON_BOARDS}
    want["main.py"] = os.path.join(REPO, "sensorbox", "device", "main.py")
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, (
        "manifest.py is out of step with the ESP32 bundle (sensorbox/host/bundle.py): add {}, remove {}".format(
            missing, extra))
    for dest, src in got.items():
        assert os.path.isfile(src), "manifest.py names {} ({}), which does not exist".format(dest, src)
    assert got == want


def test_manifest_metadata_and_requirements():
    calls = _run_manifest()
    assert len(calls["metadata"]) == 1
    meta = calls["metadata"][0]
    assert meta["version"] == sensorbox.__version__
    assert meta["description"] and meta["license"] == "MIT"
    # The device needs nothing beyond MicroPython's own modules (emlearn's native modules are optional).
    assert calls["require"] == [] and calls["include"] == []


def test_the_esp32_bundle_ships_what_the_manifest_names(tmp_path):
    # The other way round, on a real build: every .mpy in the bundle's lib/ is a module the manifest freezes.
    out = bundle.build("esp32")
    lib = os.path.join(out, "lib")
    built = set()
    for root, _, files in os.walk(lib):
        for f in files:
            if f.endswith(".mpy"):
                built.add(os.path.relpath(os.path.join(root, f), lib)[:-4] + ".py")
    got = set(_installed(_run_manifest())) - {"main.py"}
    assert built == got
    assert os.path.isfile(os.path.join(out, "main.py"))
