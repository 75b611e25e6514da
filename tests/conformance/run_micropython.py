"""Runs the conformance suite on MicroPython (no pytest there): every test_* function of every module.

A collection before each test gives it the heap whole, as a fresh process would: on a board the garbage
of earlier tests fragments what is left. A module whose tests have run is let go, so that the next one
finds the heap its predecessors' functions held.
"""
import gc
import sys

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else '.')
sys.path.insert(0, sys.path[1] + '/tests/conformance')

MODULES = ('test_attacks', 'test_codec', 'test_crc', 'test_engine', 'test_errors', 'test_session', 'test_stp')

passed = failed = 0
for name in MODULES:
    module = __import__(name)
    for attr in sorted(dir(module)):
        if not attr.startswith('test_'):
            continue
        gc.collect()
        try:
            getattr(module, attr)()
            passed += 1
        except Exception as err:
            failed += 1
            print('FAIL %s.%s' % (name, attr))
            sys.print_exception(err)
    del sys.modules[name], module
print('conformance on micropython: %d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
