# The device's main.py: MicroPython runs it at boot (from the bundle's root).
import sys

if sys.platform == "linux":  # the simulator (unix port): its lib/ mounted at /lib, where a board holds it
    # Each import interns the module's path for good (its __file__): from a bundle deep in a checkout, ~70
    # paths took 2-4 KB more heap than on a board, and the figures depended on where the checkout was.
    import vfs

    lib = __file__.rpartition("/")[0] + "/lib"
    if lib in sys.path:
        vfs.mount(vfs.VfsPosix(lib), "/lib")
        sys.path[sys.path.index(lib)] = "/lib"
    del lib, vfs

import sensorbox.device.app  # noqa: E402

sensorbox.device.app.main()
