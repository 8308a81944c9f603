"""A config update's checks against what runs (``config_file``, which loads this module when one of the keys
checked here changes): the model, the store's flash floor, the simulated microphone's WAV folder.
"""

from micropython import const

from sensorbox.device import lazy
from sensorbox.shared import config_schema as schema

_SIM_WAV = const("sensorbox.device.sensors.sim_wav")


def check(device, new, old):
    """Refuse values that what runs cannot work with (the schema cannot know it; ``new``, ``old``: key -> value
    after and before the update): the model's window, its gyroscope (``accel.gyro`` off under a 6-channel model), a RAM
    limit the model would not fit at the next start (activating a model sets ml.window to the model's, see
    models.py), a free-flash floor that retention could never reach (it would delete every stored row), and a
    WAV folder the simulated microphone could not replay (``sim.mic_wav``; the simulator's: not on boards)."""
    w = new("sim.mic_wav")
    if w and (w != old("sim.mic_wav") or new("mic.rate_hz") != old("mic.rate_hz")):
        try:
            sim = lazy.load(_SIM_WAV)
        except ImportError:  # a board: no simulated microphone, the key does nothing
            sim = None
        try:
            if sim is not None:
                sim.check(w, new("mic.rate_hz"))
        except ValueError as e:  # named: the key the update changes
            raise schema.ConfigError(str(e), "sim.mic_wav" if w != old("sim.mic_wav") else "mic.rate_hz")
        finally:
            sim = None
            lazy.unload(_SIM_WAV)
    kb = new("store.min_free_kb")
    if kb > old("store.min_free_kb"):
        try:
            free = device.platform.flash_stats()[1]
        except OSError:
            free = None
        if free is not None:
            most = (free + sum(r.bytes for r in device.store.res)) // 1024
            if kb >= most:
                raise schema.ConfigError("{} KB could never be free: the flash has {} KB free and the store holds "
                                         "{} KB, so retention would delete every stored row; less than {} KB".format(
                                             kb, free // 1024, most - free // 1024, most), "store.min_free_kb")
    m = device.ml.model
    w = new("ml.window")
    if w != old("ml.window"):
        if device.ml.held:
            raise schema.ConfigError("a model is being loaded; try again in a moment", "ml.window")
        if m is not None and m.window != w:
            raise schema.ConfigError("the active model was trained on {0}-frame windows, so ml.window "
                                     "stays {0} while it runs (activating a model sets ml.window to its window)"
                                     .format(m.window), "ml.window")
    if m is not None and m.channels == 6 and not new("accel.gyro") and old("accel.gyro"):
        raise schema.ConfigError("the active model needs the gyroscope (6 channels), or it would be refused at the "
                                 "next start: activate a 3-channel model first", "accel.gyro")
    kb = new("ml.model_max_kb")
    if m is not None and kb < old("ml.model_max_kb"):
        need = lazy.call("sensorbox.shared.model", "ram_bytes", m.info)  # (unloaded after: an import stays)
        if need > kb * 1024:
            raise schema.ConfigError("the active model needs {} bytes of RAM: at least {} KB, or it would be "
                                     "refused at the next start".format(need, (need + 1023) // 1024), "ml.model_max_kb")
