from binascii import crc32 as native

from sp_common.crc32 import crc32


def test_table_matches_binascii():
    samples = [b'', b'a', b'123456789', bytes(range(256)), b'\xff' * 1000]
    for data in samples:
        assert crc32(data) == native(data) & 0xFFFFFFFF
    assert crc32(b'123456789') == 0xCBF43926


def test_table_is_incremental():
    assert crc32(b'6789', crc32(b'12345')) == 0xCBF43926
