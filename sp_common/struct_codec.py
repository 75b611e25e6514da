"""struct_json, the compact (deprecated) codec: a module of its own, so that only a board that speaks it loads it."""
import struct

from .codec import ChecksumError, FormatError, MacError, _crc_ok, _encode, _is_int, _loads, _with_crc, dumps


class struct_json:
    """Body = service_id u16, data_id u16, status u8 (big-endian), JSON of data, CRC-32 of all that."""

    name = 'struct_json'

    @staticmethod
    def pieces(service_id, data_id, status, data, seq=None, re=0, mac=None):
        """The body; with a seq, the session v2 body: seq u32 and re u32 after the header, the MAC before the CRC."""
        for value, top in ((service_id, 0xFFFF), (data_id, 0xFFFF), (status, 0xFF)):
            if not _is_int(value) or not 0 <= value <= top:
                raise ValueError('struct_json ids must be integers in range, got %r' % (value,))
        if seq is None:
            return _with_crc((struct.pack('>HHB', service_id, data_id, status), dumps(data).encode()))
        parts = (struct.pack('>HHBII', service_id, data_id, status, seq, re), dumps(data).encode())
        if mac is not None:
            parts = parts + (mac.digest(*parts)[:8],)
        return _with_crc(parts)

    encode = classmethod(_encode)

    @staticmethod
    def decode(body, v2=False, mac=None):
        """(service_id, data_id, status, data, seq, re); v2 says which header to read (seq, re None without)."""
        head_size = 13 if v2 else 5
        end = len(body) - 4 - (8 if mac is not None else 0)
        if end < head_size + 1:   # too short for this header: broken, or a frame of the other wire (downgrade)
            raise FormatError('too short') if _crc_ok(body) else ChecksumError()
        head = struct.unpack('>HHBII' if v2 else '>HHB', body[:head_size])
        if not _crc_ok(body):
            raise ChecksumError(head[0], head[1], head[3] if v2 else None)
        if mac is not None and not mac.check(body[end:end + 8], memoryview(body)[:end]):
            raise MacError('wrong MAC')
        data = _loads(body, head_size, end)
        return (head[0], head[1], head[2], data, head[3], head[4]) if v2 else (head[0], head[1], head[2], data, None, None)
