"""The package's names and the module each lives in, for sp_common.__getattr__."""
from . import load

_HOMES = {'ChecksumError': 'codec', 'FormatError': 'codec', 'pure_json': 'codec', 'struct_json': 'struct_codec',
          'Engine': 'engine', 'data_storage': 'engine', 'Deframer': 'stp', 'frame': 'stp'}


def find(name):
    """A name of the package: from its module, a module of the package, or sp_common.names (const included)."""
    home = _HOMES.get(name)
    if home is not None:
        return getattr(load('sp_common.' + home), name)
    try:
        return load('sp_common.' + name)   # a module of the package
    except ImportError:
        return getattr(load('sp_common.names'), name)
