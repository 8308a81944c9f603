"""Code that the device (MicroPython), the host (CPython) and the browser (MicroPython WebAssembly) all run.

Rules for modules here: pure functions and small classes over arrays; no I/O, no asyncio, no sockets; no
``@micropython.native``/``viper`` (the WebAssembly port cannot compile them); never depend on dict order.
"""
