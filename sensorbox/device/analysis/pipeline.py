"""The analysis pipeline (a supervised service): accelerometer ring -> sliding windows -> features -> classifier ->
smoothing, "unknown" threshold, class-change events -> the bus.

Config (``ml.*``): ``window`` frames per window (must match the model), ``hop`` frames between windows,
``smooth`` windows whose votes are summed before deciding, ``unknown_permille`` the confidence below which the
result is "unknown". Published on ``device.bus`` (subscribers copy what they keep):

- ``features``: ``array('h')`` of the window's int16 features (model input order)
- ``predictions``: ``(class_id, confidence_permille)``; class_id: the class's id in the store's class table
  (``Model.gids``, given when the model loads), -1 = unknown; confidence = share of the trees' (a knn model: the
  k neighbours') votes over the smoothing span that went to the winning class. An anomaly model's classes are
  its normal class and ``anomaly`` (score above the threshold), its confidence the window's score in permille
  of the threshold (1000: at it; at most 32767), not smoothed (``shared.neighbors.Neighbors.anomaly``)
- ``events``: ``{"type": "class_change", "from": name, "to": name, "confidence": permille}`` (an anomaly model:
  also ``score`` and ``threshold``: the threshold was exceeded, or the score fell back to it)

t_ms is the epoch time of the window's last frame. It wakes with the accelerometer's FIFO reads (``accel.poll_ms``,
on the device's timer grid) or once per hop if that is shorter, reads the FIFO into the ring and takes what is
new. Each loop turn does at most one window's features, then yields, then classifies. The model can change at any
time (``device.ml.model``, see ``models``); the next window uses it.
"""

import array

import asyncio

from sensorbox.device import lazy
from sensorbox.device.supervisor import grid_ms
from sensorbox.device.analysis.trees import smooth
from sensorbox.shared import features, kernels
from sensorbox.shared.trees import decide

UNKNOWN = "unknown"


class Model:
    """A loaded model, made by ``models.make`` (kept here, resident, since that module is loaded only while it loads
    one): ``trees`` its evaluator, ``emlearn`` emlearn_trees' own model (``kernels_emlearn.CTrees``) or None,
    ``classes``, ``n_trees`` (votes per window), ``window``, ``channels``, ``origin``, ``gids`` (the store's ids of its
    classes, ``store.class_ids``, given when it loads) and ``info`` (what ``GET /api/model`` shows). ``serial`` tells
    models apart without keeping a reference (``device.ml.model`` is the only one: replacing a model frees it). A knn
    model's evaluator (``shared.neighbors``) votes as trees do; ``step``: an anomaly model's answer per window (its
    evaluator's ``anomaly``), else None."""

    serial = 0  # (the class's: models made so far)
    step = None
    cols = None  # a tree model on a part of more features than a tree numbers (127): where its inputs are in the
    x = None  # extractor's features (a bytearray), and its inputs gathered from there per window (classify)


class ModelSlot:
    """A model's state, as ``models`` manages it: the activity model's (``device.ml``) and the sound classifier's.

    - ``model``: the ``Model`` running, or None (none loaded yet, or none could be);
    - ``error``: why none runs, or why the last load, upload or activation was refused (a sentence), or None;
    - ``held``: who holds the model's files: False (no one: a load, activation, rollback or upload may start);
      True (one of those is running: another is refused with a reason); ``"restoring"`` (``models._RESTORING``: a
      task reloads the model that ran before an activation that found no RAM; activation and rollback leave it
      set, uploads are refused until it ends).

    The states start as the class's (no ``__init__``: an instance holds only what was set on it)."""

    model = None
    error = None
    held = False


def classify(m, feats, hist, slot, count, threshold):
    """(class index or -1, confidence permille) of the model ``m`` on ``feats``: its votes into row ``slot`` of the
    smoothing history ``hist`` (``count`` rows summed), decided against ``threshold``. Allocates nothing but the
    result (the pipeline's and the sound classifier's step)."""
    c = m.cols
    if c is not None:  # (models._load: a tree model on a part of a 6-channel sensor's 169 features)
        x = m.x
        if x is None:  # (once per model)
            x = m.x = array.array("h", bytes(2 * len(c)))
        for i in range(len(x)):
            x[i] = feats[c[i]]
        feats = x
    s = m.step
    if s is not None:  # anomaly: per window, not smoothed
        return s(feats)
    t = m.trees
    nc = len(m.classes)
    c = m.emlearn
    if c is not None:  # emlearn_trees: its predict, then its float outputs decoded in the smoothing kernel
        c.predict(feats, t.out)
        r = smooth(t.out, 1, m.n_trees, hist, slot * nc, count, nc)
    else:
        t.classify(feats)
        r = smooth(t.votes(), 0, m.n_trees, hist, slot * nc, count, nc)
    return decide(r, count, m.n_trees, threshold)  # shared: the browser decides with it too


class Pipeline:
    def __init__(self, device):
        self.device = device
        self.windows = 0
        self.gaps = 0
        self.latest = None  # (t_ms, class_index, confidence_permille)
        self.feats = None  # the latest window's features (the pipeline's own array, overwritten per window)
        self.feats_t = None  # and the time of that window (polled by the live stream, http/live.py)
        self.label = UNKNOWN  # the class name of the last prediction (a name: the model may change meanwhile)
        self.reason = None  # why there are no predictions, if there are none
        self.hop = None  # (window, hop) in effect: ml.window (the model's) and ml.hop (the model's when it was activated)

    def status(self):
        lt = self.latest
        m = self.device.ml.model
        out = {"windows": self.windows, "gaps": self.gaps, "reason": self.reason, "prediction": None,
               "model": m.info["sha256"] if m else None, "window": self.hop and self.hop[0],
               "hop": self.hop and self.hop[1]}
        if lt is not None:
            name = m.classes[lt[1]] if m is not None and 0 <= lt[1] < len(m.classes) else UNKNOWN
            out["prediction"] = {"t_ms": lt[0], "class": name, "index": lt[1], "confidence": lt[2]}
        return out

    async def run(self):
        d = self.device
        cfg = d.config
        if d.ml.model is None:
            await self._boot_model()
        if not cfg.get("ml.enabled"):
            self.reason = "ml.enabled is off"
            while True:  # until the config changes (the supervisor restarts the service then)
                await asyncio.sleep_ms(60000)
        window = cfg.get("ml.window")
        hop = min(cfg.get("ml.hop"), window)
        self.hop = (window, hop)
        smooth = cfg.get("ml.smooth")
        threshold = cfg.get("ml.unknown_permille")
        sensor = d.sensors["accel"]
        ring = sensor.ring
        ch = ring.channels
        ex = features.Extractor(ch, window, ring.rate_hz)  # (again if sampling restarts at another rate)
        feats = array.array("h", bytes(2 * ex.n_features))
        self.feats = feats
        buf = array.array("h", bytes(2 * window * ch))
        hist = None  # votes of the last `smooth` windows, smooth x n_classes
        serial = 0  # the model in use (Model.serial): no reference, so a replaced model can be freed
        gen = -1
        filled = seq = nh = 0
        poll = 20
        while True:
            if sensor.generation != gen:  # sampling (re)started: sequence numbers begin again
                if sensor.driver is None:
                    self.reason = "the accelerometer is off"
                    await asyncio.sleep_ms(grid_ms(1000))
                    continue
                gen = sensor.generation
                if ex.rate_hz != ring.rate_hz:  # frequency features in Hz at the sensor's rate
                    ex = None
                    ex = features.Extractor(ch, window, ring.rate_hz)
                seq = ring.head
                filled = 0
                self.reason = None
                # With the accelerometer's FIFO reads (on the same timer grid: one wake-up for both), or once per
                # hop when hops are shorter.
                poll = max(20, min(sensor.poll_ms, hop * 1000 // ring.rate_hz))
            await asyncio.sleep_ms(grid_ms(poll))
            sensor.pump()  # the frames the FIFO holds now, whichever of the two woke first
            while True:
                first, n = ring.read(seq, buf, window - filled, filled * ch)  # into buf after the frames held
                if n == 0:
                    break
                if first != seq:  # frames lost or overwritten: this window would span a gap
                    self.gaps += 1
                    filled = 0
                    seq = first
                    continue
                seq += n
                filled += n
                if filled < window:
                    break
                t_ms = ring.time_of(seq - 1)
                ex.extract(buf, feats)
                self.feats_t = t_ms
                self.windows += 1
                d.bus.publish("features", t_ms, feats)
                await asyncio.sleep_ms(0)
                m = d.ml.model
                if (m.serial if m is not None else 0) != serial:  # new model: fresh smoothing state
                    serial = m.serial if m is not None else 0
                    nh = 0
                    hist = array.array("H", bytes(2 * smooth * len(m.classes))) if m is not None else None
                if m is not None and m.gids is None and self.windows % 32 == 0:  # the class table was not writable
                    m.gids = d.store.class_ids(m.classes)
                if m is None:
                    self.reason = "no model loaded: " + str(d.ml.error)
                    if self.windows % 32 == 0:
                        await self._boot_model()
                elif m.window != window or m.channels > ch:  # (a 3-channel model takes its part of 6 channels')
                    self.reason = "model needs {}-frame windows of {} channels".format(m.window, m.channels)
                else:
                    self.reason = None
                    self._classify(m, feats, hist, nh % smooth, min(nh + 1, smooth), threshold, t_ms)
                    nh += 1
                m = None  # hold no model across the awaits
                # slide: keep the last window - hop frames
                keep = (window - hop) * ch
                kernels.copy_i16(buf, window * ch - keep, buf, 0, keep)  # no memoryview slices (allocations)
                filled = window - hop

    async def _boot_model(self):
        """Load the model to run (models.boot) when none was tried, or when the last try was short of memory
        (a busy heap at start: tried again at a pipeline restart and every 32 windows, until one loads)."""
        d = self.device
        err = d.ml.error
        if err is not None and "RAM" not in err:
            return  # refused for what it is: a new upload or activation loads another
        try:
            await lazy.load("sensorbox.device.analysis.models").boot(d)  # yields while it parses
        except ValueError:  # models.ModelError: a model upload is loading one right now
            pass
        except MemoryError:  # (the loader's own code found no room: as a model short of it, tried again; the
            if d.ml.model is None:  # pipeline service failed for it, the core from ROMFS at 80wK)
                d.ml.error = "not enough RAM to load the model now; tried again every 32 windows"
        finally:
            lazy.unload("sensorbox.device.analysis.models")

    def _classify(self, m, feats, hist, slot, count, threshold, t_ms):
        best, conf = classify(m, feats, hist, slot, count, threshold)
        self.latest = (t_ms, best, conf)
        bus = self.device.bus
        if m.gids is not None:  # stored with the class's id in the store's class table, which names it for good
            bus.publish("predictions", t_ms, (m.gids[best] if best >= 0 else -1, conf))
        name = m.classes[best] if best >= 0 else UNKNOWN
        if name != self.label:  # by name: an index of the model before a swap means nothing in this one
            e = {"type": "class_change", "from": self.label, "to": name, "confidence": conf}
            if m.step is not None:  # an anomaly model: its score and threshold too
                e["score"] = m.trees.last
                e["threshold"] = m.trees.threshold
            bus.publish("events", t_ms, e)
            self.label = name
