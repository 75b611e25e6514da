"""The package's names and the module each lives in, for sp_micropython.__getattr__."""
from sp_common import load

_HOMES = {'pure_json_protocol': 'protocol', 'serve': 'protocol', 'UartStream': 'uart', 'StdioStream': 'stdio',
          'TcpServerStream': 'tcp_server', 'TcpClientStream': 'tcp_client', 'struct_json_protocol': 'struct_protocol',
          'PrintLog': 'printlog'}


def find(name):
    """A name of the package: from its module, from sp_common.const, a module of the package, or sp_common's."""
    home = _HOMES.get(name)
    if home is not None:
        return getattr(load('sp_micropython.' + home), name)
    const = load('sp_common.const')
    if hasattr(const, name):
        return getattr(const, name)
    try:
        return __import__('sp_micropython.' + name, None, None, ('',))   # a module of the package
    except ImportError:
        import sp_common
        return getattr(sp_common, name)   # data_storage, names for logs
