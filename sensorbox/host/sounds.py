"""Real sound recordings that Debian packages ship under open licences, as a labelled dataset for sound classifiers.

``sensorbox train sounds --sensor sound`` (or ``train.dataset("sounds")``) trains on them; ``make test`` and
``make bench`` install the packages (``scripts/ensure-system-packages``). Classes:

- ``press`` and ``release``: the key-down and key-up sounds of 85 keys of an IBM Model M keyboard
  (``bucklespring-data``, ``/usr/share/buckle/wav/<scan code>-0.wav`` / ``-1.wav``, 44.1 kHz, ~0.33 s each;
  GPL-2+, Copyright 2016 Ico Doornekamp). Group: the key (its press and its release stay in one fold).
- ``speech``: ten English utterances (``pocketsphinx-testdata``, ``/usr/share/pocketsphinx/test/data/cards`` and
  ``librivox``, 16 kHz, 1-7 s each; BSD-2, Copyright 1995-2014 Carnegie Mellon University). Group: the collection
  (``cards``, ``librivox``: two speakers, so a fold never tests on a voice it trained on).

The licence texts are in the packages' ``/usr/share/doc/<package>/copyright``; docs/sounds.md repeats the notices.
Nothing of them is copied into this repository: ``dataset()`` imports them into ``build/cache/sounds`` (16 kHz
mono int16, the dataset folder format) the first time it is asked.
"""

import os
import shutil
import tempfile

from sensorbox.host import datasets

KEYS = "/usr/share/buckle/wav"
SPEECH = ("/usr/share/pocketsphinx/test/data/cards", "/usr/share/pocketsphinx/test/data/librivox")
PACKAGES = {"bucklespring-data": ("GPL-2+", "Copyright 2016 Ico Doornekamp"),
            "pocketsphinx-testdata": ("BSD-2-Clause", "Copyright 1995-2014 Carnegie Mellon University")}
CLASSES = ("press", "release", "speech")
VERSION = 1  # of the layout below: a cache made by another version is made again


def missing():
    """What is not installed, as a sentence saying how to install it, or None."""
    need = [p for p, d in (("bucklespring-data", KEYS), ("pocketsphinx-testdata", SPEECH[0])) if not os.path.isdir(d)]
    if not need:
        return None
    return ("the sound recordings come from Debian packages that are not installed: sudo apt-get install {} (make "
            "test and make bench install them)".format(" ".join(need)))


def layout(dest):
    """Links to the recordings in ``dest/<class>/<group>__<name>.wav``: what ``sensorbox import --sensor sound
    --label-from folder --group-pattern`` takes. Returns the number of files."""
    why = missing()
    if why:
        raise datasets.DatasetError(why)
    n = 0
    for c in CLASSES:
        os.makedirs(os.path.join(dest, c), exist_ok=True)
    for f in sorted(os.listdir(KEYS)):
        if f.endswith(".wav") and f[-6:-4] in ("-0", "-1"):
            key = f[:-6]
            c = "press" if f[-5] == "0" else "release"
            os.symlink(os.path.join(KEYS, f), os.path.join(dest, c, "key{}__{}.wav".format(key, c)))
            n += 1
    for d in SPEECH:
        for f in sorted(os.listdir(d)):
            if f.endswith(".wav"):
                os.symlink(os.path.join(d, f), os.path.join(dest, "speech", "{}__{}".format(os.path.basename(d), f)))
                n += 1
    return n


GROUP_PATTERN = r"([^/_]+)__[^/]*$"


def dataset(cache_dir=None, rate=16000, progress=None):
    """The dataset folder of the recordings at ``rate`` (imported once into ``build/cache/sounds-<rate>``)."""
    from sensorbox.host import importer

    cache_dir = cache_dir or os.path.join(datasets.REPO, "build", "cache")
    out = os.path.join(cache_dir, "sounds-{}-v{}".format(rate, VERSION))
    if os.path.exists(os.path.join(out, "dataset.json")):
        return out
    # One scratch folder per process: parallel test workers may import at the same time; the first to finish
    # renames its folder into place and the others drop theirs.
    part = "{}.part-{}".format(out, os.getpid())
    tmp = tempfile.mkdtemp(prefix="sounds-")
    try:
        layout(tmp)
        shutil.rmtree(part, ignore_errors=True)
        importer.import_recordings([tmp], part, progress=progress, sensor="sound", to_rate=rate,
                                   label_from="folder", group_pattern=GROUP_PATTERN)
        try:
            os.rename(part, out)
        except OSError:
            if not os.path.exists(os.path.join(out, "dataset.json")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(part, ignore_errors=True)
    return out
