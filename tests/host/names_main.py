# main.py for tests that read the name pool of the running app (test_api_contract's interned-names test): the
# bundle's own main.py ($SENSORBOX_MAIN) runs as a board runs it, and a thread prints every interned name
# (micropython.qstr_info(1): "Q(<name>)" lines) between NAMES-BEGIN and NAMES-END whenever the file
# $SENSORBOX_DATA/.names appears, then removes it. The device has no figure for its names: qstr_info prints.
import _thread
import os
import time

import micropython

_ASK = os.getenv("SENSORBOX_DATA") + "/.names"


def _watch():
    while True:
        time.sleep(0.2)
        try:
            os.stat(_ASK)
        except OSError:
            continue
        print("NAMES-BEGIN")
        micropython.qstr_info(1)
        print("NAMES-END")
        os.remove(_ASK)


_thread.start_new_thread(_watch, ())
_main = os.getenv("SENSORBOX_MAIN")
exec(open(_main).read(), {"__name__": "__main__", "__file__": _main})
