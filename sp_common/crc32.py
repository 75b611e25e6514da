"""CRC-32 (zlib polynomial) from a table, for ports built without binascii.crc32 (sp_common.codec picks).

The table is an array of raw 32-bit words: as a list, the entries above 2**30
would be 128 long-int objects on a 32-bit port, scattered over the heap for good.
"""
from array import array

_table = None


def crc32(data, crc=0):
    """Table-driven CRC-32 for ports built without binascii.crc32."""
    global _table
    if _table is None:
        _table = array('I')
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            _table.append(c)
    t = _table
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
