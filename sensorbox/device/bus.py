"""The in-process result bus: analysis services publish, the store and live readers subscribe.

``bus.publish(topic, t_ms, value)`` calls every subscriber of ``topic`` synchronously, in subscription order.
Topics are resource names ("features", "predictions", "events", "soundlevel", ...). A value is whatever the
topic's producer documents (an int16 array, a tuple, a small dict for events); subscribers must copy what they
keep, must not block and must not raise (an exception is logged and the other subscribers still run).
The store subscribes first, so what a reader sees later has already been handed to the store.
"""


class Bus:
    def __init__(self, log):
        self.log = log
        self._subs = {}  # topic -> list of callables
        self.published = 0

    def subscribe(self, topic, fn):
        self._subs.setdefault(topic, []).append(fn)

    def unsubscribe(self, topic, fn):
        subs = self._subs.get(topic)
        if subs and fn in subs:
            subs.remove(fn)

    def publish(self, topic, t_ms, value):
        self.published += 1
        subs = self._subs.get(topic)
        if not subs:
            return
        for fn in subs:
            try:
                fn(topic, t_ms, value)
            except Exception as e:
                self.log.exception("bus", "subscriber of {} failed".format(topic), e)
