"""Codec, STP framing and the protocol engine shared by the host and the device runtimes.

Names load from their modules on first use (sp_common.Engine, sp_common.frame,
sp_common.SID_READ_REQUEST, ...; see exports): a board spends heap only on
what it touches, and one that imports the modules it uses holds not even the
table of names.
"""


def load(name):
    """The module of that full name, imported on first use.

    Code loaded while a board serves stays for good; on MicroPython a
    collection first frees the garbage of the moment, so that the module's
    objects fill the holes low in the heap instead of landing between
    garbage and leaving holes when it goes (a long-running heap fragments less).
    """
    import sys
    if sys.implementation.name != 'micropython':
        return __import__(name, None, None, ('',))   # it waits for a module another thread is still importing
    module = sys.modules.get(name)
    if module is None:
        import gc
        gc.collect()
        module = __import__(name, None, None, ('',))
    return module


def __getattr__(name):
    return load('sp_common.exports').find(name)
