# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # sensorbox from a notebook: import, train, evaluate
#
# The same Python API the `sensorbox` command uses. This notebook takes a public dataset that a PyPI package
# ships (sktime's copy of **BasicMotions**: smartwatch accelerometer + gyroscope at 10 Hz, 4 activities, 40
# training and 40 test recordings; sktime is BSD-3-Clause), imports it into sensorbox's dataset format, looks at
# the features, trains models on the training recordings and evaluates them on the official test recordings,
# next to a plain scikit-learn baseline on the same split.
#
# Open it in Jupyter with jupytext (`pip install jupytext`), or run it as a script: `python docs/notebook.py`.
# `make test` runs it (tests/host/test_notebook.py). With a device running, set `SENSORBOX_URL` (and
# `SENSORBOX_PASSWORD` or `SENSORBOX_TOKEN`) to also pull its data.

# %%
import os
import tempfile

from sensorbox.host import datasets, evaluate, train

work = os.environ.get("SENSORBOX_NOTEBOOK_DIR") or tempfile.mkdtemp(prefix="sensorbox-notebook-")
bm = "datasets/data/BasicMotions/BasicMotions_{}.ts"

# %% [markdown]
# ## Pull (optional)
# A device's stored data and labels, incrementally (`sensorbox pull URL --out DIR` does the same).

# %%
if os.environ.get("SENSORBOX_URL"):
    from sensorbox.host import pull

    pull.pull(os.environ["SENSORBOX_URL"], os.path.join(work, "pulled"))

# %% [markdown]
# ## Import
# The .ts files do not say their rate (10 Hz) or units (m/s², rad/s): we declare them. Import resamples to the
# device's 50 Hz and converts to its int16 counts, and warns about what a device would see differently: this
# watch removed gravity from its accelerometer, and at 10 Hz nothing above 5 Hz was measured.

# %%
for part in ("TRAIN", "TEST"):
    summary = datasets.import_recordings([datasets.package_data("sktime", bm.format(part))],
                                         os.path.join(work, part.lower()), rate=10, units="m/s2",
                                         gyro_units="rad/s")
    print(part, summary["recordings"], "recordings;", {c: v["recordings"] for c, v in summary["classes"].items()})
    for w in summary["warnings"]:
        print("  warning:", w)

# %% [markdown]
# ## See the features
# Windows x features as a DataFrame: what the device computes for every 128-frame window.

# %%
df = datasets.features_frame(os.path.join(work, "train"))
print(df.shape)
print(df.groupby("label")[["am_std", "am_jerk", "am_domf"]].median())

# %% [markdown]
# ## Train and compare model kinds
# Grouped 5-fold cross-validation (each recording its own group here: the dataset does not say which student
# recorded what), a random forest for the device, k-nearest neighbours and scikit-learn's default forest on the
# same folds; then every kind on the held-out test recordings.

# %%
report = train.train(os.path.join(work, "train"), os.path.join(work, "model"), test=os.path.join(work, "test"),
                     compare=["knn", "baseline"], quiet=True, warn=lambda w: None)
print(train.report_text(report))

# %% [markdown]
# ## Evaluate
# The exported model on the test recordings, as a device computes it: per window and per recording (majority
# vote over its windows).

# %%
ev = evaluate.evaluate(os.path.join(work, "model"), os.path.join(work, "test"), warn=lambda w: None)
print(evaluate.text(ev))
results = {k: round(v["window_accuracy"], 3) for k, v in report["test"]["kinds"].items()}
print("test accuracy per window:", results)
