"""Codec, STP framing and the protocol engine shared by the host and the device runtimes.

Names load from their modules on first use (sp_common.Engine, sp_common.frame,
sp_common.SID_READ_REQUEST, ...; see exports): a board spends heap only on
what it touches, and one that imports the modules it uses holds not even the
table of names.
"""
import sys


def load(name):
    """The module of that full name, imported on first use.

    Code loaded while a board serves stays for good; on MicroPython a
    collection first frees the garbage of the moment, so that the module's
    objects fill the holes low in the heap instead of landing between
    garbage and leaving holes when it goes (a long-running heap fragments less).
    """
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, '__spec__', None), '_initializing', False):
        return module   # (a module another thread is still importing is waited for by __import__)
    if sys.implementation.name == 'micropython':
        import gc
        gc.collect()
    return __import__(name, None, None, ('',))


def __getattr__(name):
    return load('sp_common.exports').find(name)
