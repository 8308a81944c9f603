# The device's main.py (the bundle's root; an app update never replaces it): bootstate.pick, from this bundle,
# chooses the app to run (the bundle's own or an update's slot) and imports it, then the app starts (app.main; a
# crash at import or at boot is said in boot.json, then the device restarts). Little more here: this file is
# compiled at every boot and its code stays in RAM while the app runs.
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

__import__("sensorbox.device.bootstate").device.bootstate.pick()
__import__("sensorbox.device.app").device.app.main()
