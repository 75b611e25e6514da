"""Two engines wired back to back, for the conformance suite on both interpreters."""
from sp_common import Engine, pure_json


class Recorder:
    """Logger stand-in: keeps every line."""

    def __init__(self):
        self.lines = []

    def isEnabledFor(self, level):
        return True

    def log(self, level, text):
        self.lines.append((level, text))

    def text(self):
        return '\n'.join(line[1] for line in self.lines)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self):
        self.now = 0

    def ms(self):
        return self.now


class Link:
    """Two engines back to back: pump() carries each one's outbox to the other until both are quiet.

    Both speak the original wire unless session_v2 (or a side's own options) say otherwise.
    """

    def __init__(self, codec=pure_json, server=None, client=None, session_v2=False, max_frame=8192):
        self.clock = Clock()
        self.server_log = Recorder()
        self.client_log = Recorder()
        common = {'codec': codec, 'clock': self.clock.ms, 'session_v2': session_v2, 'max_frame': max_frame}
        self.server = Engine(False, log=self.server_log, hexlog=self.server_log, **dict(common, **(server or {})))
        self.client = Engine(True, log=self.client_log, hexlog=self.client_log, **dict(common, **(client or {})))

    def connect(self):
        self.server.connection_made()
        self.client.connection_made()
        self.pump()

    def pump(self):
        while True:
            to_server = self.client.data_to_send()
            to_client = self.server.data_to_send()
            if not (to_server or to_client):
                return
            self.server.feed(to_server)
            self.client.feed(to_client)

    def request(self, sid, did, data=None, status=0):
        """Client asks, server answers; returns the buffered response or None."""
        self.client.send_msg(sid, did, data, status)
        self.pump()
        return self.client.pop_received(sid + 1, did)
