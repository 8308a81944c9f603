"""The microSD double of the device tests (``tests/support/fake_sdcard.py``) against MicroPython's published ESP32
API (``micropython-esp32-esp32-generic-stubs``, generated from the firmware): ``machine.SDCard``'s constructor and
block-device methods have the stub's parameters, and every argument the store passes (``config_schema.sd_args``
of each ``board.sdcard`` form) is one the firmware's ``SDCard`` takes."""

import ast
import importlib.metadata
import os

from sensorbox.host import bundle
from sensorbox.shared import config_schema

REPO = bundle.REPO


def _stub(name):
    dist = importlib.metadata.distribution("micropython-esp32-esp32-generic-stubs")
    return ast.parse(open(str(dist.locate_file(name))).read())


def _methods(tree, cls):
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for f in node.body:
                if isinstance(f, ast.FunctionDef):
                    a = f.args
                    out.setdefault(f.name, []).append(([x.arg for x in a.posonlyargs + a.args if x.arg != "self"],
                                                       [x.arg for x in a.kwonlyargs]))
    return out


def test_sdcard_double_has_the_firmware_interface():
    stub = _methods(_stub("machine.pyi"), "SDCard")
    ours = _methods(ast.parse(open(os.path.join(REPO, "tests", "support", "fake_sdcard.py")).read()), "SDCard")
    assert ours["__init__"][0] == stub["__init__"][0], (ours["__init__"], stub["__init__"])
    for fn in ("readblocks", "writeblocks"):  # the stub's two forms: with and without the offset
        forms = stub[fn]
        assert ours[fn][0][0] == max((f[0] for f in forms), key=len), (fn, ours[fn], forms)
    for fn in ("ioctl", "info", "deinit"):
        assert fn in stub and fn in ours, fn
    init_params = set(stub["__init__"][0][0]) | set(stub["__init__"][0][1])
    for spec in ("mmc", "mmc4", "spi:18,23,19,5"):
        assert set(config_schema.sd_args(spec)) <= init_params, spec
    # and vfs.mount takes a block device and a path, as sd.py calls it
    mounts = [n for n in ast.walk(_stub("vfs.pyi")) if isinstance(n, ast.FunctionDef) and n.name == "mount"]
    assert any([a.arg for a in m.args.args][:2] == ["fsobj", "mount_point"] for m in mounts)


def test_sd_spec_forms_and_refusals():
    assert config_schema.sd_args("mmc") == {"slot": 1, "width": 1}
    assert config_schema.sd_args("spi:18,23,19,5") == {"slot": 2, "sck": 18, "mosi": 23, "miso": 19, "cs": 5}
    for bad in ("sd", "spi:18,23,19", "spi:18,18,19,5", "spi:a,b,c,d", "spi:18,23,19,99"):
        try:
            config_schema.validate({"board.sdcard": bad})
            raise AssertionError("accepted " + bad)
        except config_schema.ConfigError as e:
            assert e.field == "board.sdcard" and "spi:SCK,MOSI,MISO,CS" in e.reason, e.reason
