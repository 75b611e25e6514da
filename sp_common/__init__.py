"""Codec, STP framing and the protocol engine shared by the host and the device runtimes.

Names load from their modules on first use (sp_common.Engine, sp_common.frame,
sp_common.SID_READ_REQUEST, ...): a board spends heap only on what it touches.
"""
_HOMES = {'ChecksumError': 'codec', 'FormatError': 'codec', 'pure_json': 'codec', 'struct_json': 'struct_codec',
          'COUNTERS': 'engine', 'Engine': 'engine', 'data_storage': 'message', 'Deframer': 'stp', 'frame': 'stp'}


def __getattr__(name):
    home = _HOMES.get(name)
    if home is not None:
        return getattr(__import__('sp_common.' + home, None, None, (name,)), name)
    try:
        return __import__('sp_common.' + name, None, None, ('',))   # a module of the package
    except ImportError:
        return getattr(__import__('sp_common.names', None, None, (name,)), name)
