"""struct_json_protocol: a module of its own, so that only a board that speaks struct_json loads that codec."""
from sp_common.struct_codec import struct_json

from .protocol import pure_json_protocol


class struct_json_protocol(pure_json_protocol):
    """Same, with the compact (deprecated) struct_json codec."""

    CODEC = struct_json
