"""Codec, STP framing and the protocol engine shared by the host and the device runtimes."""
from .const import *  # noqa: F401,F403
from .codec import ChecksumError, FormatError, pure_json, struct_json  # noqa: F401
from .engine import COUNTERS, Engine  # noqa: F401
from .message import data_storage  # noqa: F401
from .stp import Deframer, frame  # noqa: F401
