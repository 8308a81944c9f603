"""What emlearn-micropython declares for the native modules sensorbox calls: names, parameters, array typecodes and
the errors the C code raises. Facts recorded by hand (emlearn's files are not copied into this repository) from
emlearn-micropython at commit ``COMMIT``:

- ``stubs/emlearn_trees.py``, ``stubs/emlearn_fft.py``, ``stubs/emlearn_iir.py``: names and parameters;
- ``src/emlearn_trees/emlearn_trees.py`` and ``src/emlearn_fft/emlearn_fft.py``: the Python halves (``load_model``,
  ``fill``), merged into the native .mpy;
- ``src/emlearn_trees/trees.c``, ``src/emlearn_fft/fft.c``, ``src/emlearn_iir/iir_filter.c``: what the stubs leave
  out (which typecodes and lengths are checked, which names the module exports, what is raised).

The test doubles in ``tests/support/natmods/`` implement exactly this. ``tests/host/test_emlearn_doubles.py`` checks
them against it (and it against a checkout of emlearn-micropython named by ``SENSORBOX_EMLEARN_SRC``);
``tests/device/test_emlearn.py`` calls the modules in use (the doubles, or the real ones with ``SENSORBOX_NATMODS``)
the ways the stubs do not allow and expects the C code's errors.
"""

COMMIT = "3234e689a8c7eb42a3af1f75b6f72d36859e0ed2"  # emlearn/emlearn-micropython, 2025-12-13

# (module, name as in the stub, parameters without self, source file). "Class.__init__" is the constructor.
API = (
    ("emlearn_trees", "new", ("max_trees", "max_nodes", "max_leaves"), "stubs/emlearn_trees.py"),
    ("emlearn_trees", "load_model", ("trees", "file"), "stubs/emlearn_trees.py"),
    ("emlearn_trees", "Model.predict", ("inputs", "outputs"), "stubs/emlearn_trees.py"),
    ("emlearn_trees", "Model.outputs", (), "stubs/emlearn_trees.py"),
    ("emlearn_trees", "Model.setdata", ("features", "classes"), "stubs/emlearn_trees.py"),
    ("emlearn_trees", "Model.addroot", ("root",), "stubs/emlearn_trees.py"),
    ("emlearn_trees", "Model.addnode", ("left", "right", "feature", "value"), "stubs/emlearn_trees.py"),
    ("emlearn_trees", "Model.addleaf", ("value",), "stubs/emlearn_trees.py"),
    ("emlearn_fft", "FFT.__init__", ("length",), "stubs/emlearn_fft.py"),
    ("emlearn_fft", "FFT.run", ("real", "imag"), "stubs/emlearn_fft.py"),
    ("emlearn_fft", "FFT.fill", ("sin", "cos"), "stubs/emlearn_fft.py"),
    ("emlearn_fft", "fill", ("fft", "n"), "stubs/emlearn_fft.py"),
    ("emlearn_iir", "new", ("coefficients",), "stubs/emlearn_iir.py"),
    ("emlearn_iir", "IIR.run", ("values",), "stubs/emlearn_iir.py"),
)

# The stubs' classes and whether the native module exports them (trees.c and iir_filter.c store only ``new``;
# fft.c stores ``FFT``). A double names an unexported class with a leading underscore.
CLASSES = {"emlearn_trees": ("Model", False), "emlearn_fft": ("FFT", True), "emlearn_iir": ("IIR", False)}

# Array arguments: (module, name, parameter) -> the typecode the C code requires (ValueError otherwise).
TYPECODES = {
    ("emlearn_trees", "Model.predict", "inputs"): "h",
    ("emlearn_trees", "Model.predict", "outputs"): "f",
    ("emlearn_fft", "FFT.run", "real"): "f",
    ("emlearn_fft", "FFT.run", "imag"): "f",
    ("emlearn_fft", "FFT.fill", "sin"): "f",
    ("emlearn_fft", "FFT.fill", "cos"): "f",
    ("emlearn_iir", "new", "coefficients"): "f",
    ("emlearn_iir", "IIR.run", "values"): "f",
}

# Other rules of the C code, each (what is done, the exception), checked by tests/device/test_emlearn.py:
RULES = (
    ("emlearn_trees predict with len(outputs) != the model's classes", "RuntimeError"),
    ("emlearn_trees predict before setdata (0 classes)", "ValueError"),
    ("emlearn_trees outputs() before setdata", "ValueError"),
    ("emlearn_trees addnode/addroot/addleaf beyond new()'s capacity", "ValueError"),
    ("emlearn_trees addnode with feature > 127 or < -1", "ValueError"),
    ("emlearn_fft run before fill", "ValueError"),
    ("emlearn_fft run or fill with arrays of another length (run: length, fill: length // 2)", "ValueError"),
    ("emlearn_iir new with a length that is not a multiple of 6, or empty", "ValueError"),
)
