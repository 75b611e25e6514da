"""pure_json_protocol / struct_json_protocol for the host: the shared engine plus threads, waits and logging."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional

from sp_common import Engine, pure_json, struct_json
from sp_common.const import STATUS_OKAY
from sp_common.message import data_storage


class _ChannelLogger:
    """Logger of '<prefix>.<channel name>', looked up on each use: the name can change at connect."""

    def __init__(self, prefix: str, protocol: 'pure_json_protocol') -> None:
        self._prefix = prefix
        self._protocol = protocol
        self._name: Optional[str] = None
        self._cached = logging.getLogger(prefix)

    def _logger(self) -> logging.Logger:
        name = self._protocol._engine.channel_name
        if name != self._name:
            self._name = name
            self._cached = logging.getLogger(self._prefix if name is None else '%s.%s' % (self._prefix, name))
        return self._cached

    def isEnabledFor(self, level: int) -> bool:
        return self._logger().isEnabledFor(level)

    def log(self, level: int, text: str) -> None:
        self._logger().log(level, text)


class pure_json_protocol:
    """The socket_protocol API on one comm instance; callbacks run on the comm's I/O thread."""

    CODEC = pure_json

    def __init__(self, comm_instance, secret: Optional[str] = None, auto_auth: bool = False,
                 channel_name: Optional[str] = None, max_frame: int = 65536, max_buffered: int = 256) -> None:
        self.__comm_inst__ = comm_instance
        self._cond = threading.Condition(threading.RLock())
        self._log = _ChannelLogger('socket_protocol', self)
        self._engine = Engine(self._write, comm_instance.IS_CLIENT, codec=self.CODEC, secret=secret,
                              auto_auth=auto_auth, channel_name=channel_name, max_frame=max_frame,
                              max_buffered=max_buffered, log=self._log,
                              hexlog=_ChannelLogger(getattr(comm_instance, 'LOGGER_PREFIX', 'comm'), self))
        comm_instance.init_channel_name(channel_name)
        comm_instance.register_callback(self._on_data)
        comm_instance.register_disconnect_callback(self._on_disconnect)
        comm_instance.register_connect_callback(self._on_connect)

    # comm callbacks (I/O thread) -------------------------------------------------
    def _write(self, frame: bytes) -> None:
        self.__comm_inst__.send(frame)

    def _on_data(self, data: bytes) -> None:
        with self._cond:
            name = self._engine.channel_name
            self._engine.feed(data)
            if self._engine.channel_name != name:
                self.__comm_inst__.init_channel_name(self._engine.channel_name)
            self._cond.notify_all()

    def _on_connect(self) -> None:
        with self._cond:
            self._engine.connection_made()
            self._cond.notify_all()

    def _on_disconnect(self) -> None:
        with self._cond:
            self._engine.connection_lost()
            self._cond.notify_all()

    def _wait(self, predicate: Callable[[], Any], timeout: Optional[float]) -> Any:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    # registries -------------------------------------------------------------------
    def add_data(self, service_id, data_id, name: str) -> None:
        with self._cond:
            self._engine.add_data(service_id, data_id, name)

    def add_msg_to_auth_whitelist_(self, service_id: int, data_id) -> None:
        with self._cond:
            self._engine.add_msg_to_auth_whitelist_(service_id, data_id)

    def add_service(self, req_sid: int, resp_sid: int, req_name: Optional[str] = None,
                    resp_name: Optional[str] = None) -> None:
        with self._cond:
            self._engine.add_service(req_sid, resp_sid, req_name, resp_name)

    def add_status(self, status: int, name: str) -> None:
        with self._cond:
            self._engine.add_status(status, name)

    def register_callback(self, service_id, data_id, callback, *args, **kwargs) -> None:
        with self._cond:
            self._engine.register_callback(service_id, data_id, callback, *args, **kwargs)

    # state --------------------------------------------------------------------------
    def is_connected(self) -> bool:
        return self.__comm_inst__.is_connected()

    def check_authentification_state(self) -> bool:
        return self._engine.is_trusted()

    def connection_established(self) -> bool:
        return self.is_connected() and (self._engine.secret is None or self.check_authentification_state())

    @property
    def channel_name(self) -> Optional[str]:
        return self._engine.channel_name

    @property
    def counters(self) -> Dict[str, int]:
        """What was received, sent, dropped and rejected, by name (see sp_common.COUNTERS)."""
        with self._cond:
            return dict(self._engine.counters)

    def reconnect(self) -> None:
        self.__comm_inst__.reconnect()

    def close(self) -> None:
        self.__comm_inst__.close()

    # exchanges ------------------------------------------------------------------------
    def authentificate(self, timeout: float = 2) -> bool:
        """Runs the seed/key handshake; True once the peer accepted the key."""
        engine = self._engine
        if engine.secret is None or not self._wait(self.is_connected, timeout):
            return False
        with self._cond:
            engine.start_auth()
            self._cond.wait_for(engine.auth_settled, timeout)
            return engine.is_trusted()

    def send(self, service_id: int, data_id, data, status: int = STATUS_OKAY, timeout: float = 2) -> bool:
        """Sends once a connection is there (and trusted, with auto_auth); False after timeout."""
        engine = self._engine
        ready = self.connection_established if engine.auto_auth else self.is_connected
        if not self._wait(ready, timeout):
            self._log.log(logging.WARNING, 'cannot send, no %sconnection' % ('trusted ' if engine.auto_auth else ''))
            return False
        with self._cond:
            engine.send(service_id, data_id, data, status)
        return True

    def receive(self, service_id: int, data_id, timeout: float = 1) -> Optional[data_storage]:
        """The next buffered message for these ids, waiting up to timeout; None if none came."""
        return self._wait(lambda: self._engine.pop_received(service_id, data_id), timeout)


class struct_json_protocol(pure_json_protocol):
    """Same API, compact struct_json codec (deprecated; both ends must use it)."""

    CODEC = struct_json
