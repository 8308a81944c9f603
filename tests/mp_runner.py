# Runs one test function on MicroPython (the unix port), as tests/conftest.py asks:
#     micropython tests/mp_runner.py MODULE TEST_NAME
# MODULE is found on MICROPYPATH (the compiled test module, the bundle's lib, tests/support).
# A test passes when it returns (or its coroutine completes) without raising. Exit status 0 = pass.
import sys

import asyncio


def main():
    module_name, test_name = sys.argv[1], sys.argv[2]
    module = __import__(module_name)
    fn = getattr(module, test_name)
    result = fn()
    if result is not None and hasattr(result, "send"):  # a coroutine (generator on MicroPython)
        asyncio.run(result)
        asyncio.new_event_loop()
    print("SENSORBOX-TEST PASS")


main()
