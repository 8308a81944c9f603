# Run on the MicroPython unix port by host tests: loads a model directory with the device's code and prints
# one predicted class per row of an int16 .npy feature matrix, with each available kernel:
#     micropython mp_predict.py MODEL_DIR X.npy        ->  "plain 0 3 1 ...", "viper 0 3 1 ...", "heap N"
import array
import gc
import json
import sys

from sensorbox.shared import model, npy, trees

model_dir, x_path = sys.argv[1], sys.argv[2]
with open(model_dir + "/meta.json") as f:
    meta = json.load(f)
with open(x_path, "rb") as f:
    descr, shape, offset = npy.parse_header(f.read(128))
    f.seek(offset)
    X = array.array("h", f.read())
rows, cols = shape
x = array.array("h", bytes(2 * cols))
kernels = [("plain", trees.vote)]
try:
    from sensorbox.device.analysis import trees as device_trees

    kernels.append(("viper", device_trees.vote))
except ImportError:
    pass
for name, kernel in kernels:
    gc.collect()
    before = gc.mem_alloc()
    t = trees.Trees(meta["trees"], meta["nodes"], meta["leaves"], kernel)
    with open(model_dir + "/model.csv") as f:
        model.load(f, meta, t)
    gc.collect()
    heap = gc.mem_alloc() - before
    out = []
    for i in range(rows):
        for j in range(cols):
            x[j] = X[i * cols + j]
        out.append(str(t.classify(x)))
    print(name, " ".join(out))
    print("heap", heap)
