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


class Link:
    """Frames written by one engine are queued and delivered to the other by pump()."""

    def __init__(self, codec=pure_json, server=None, client=None):
        self.to_server = []
        self.to_client = []
        self.server_log = Recorder()
        self.client_log = Recorder()
        self.server = Engine(self.to_client.append, False, codec=codec, log=self.server_log,
                             hexlog=self.server_log, **(server or {}))
        self.client = Engine(self.to_server.append, True, codec=codec, log=self.client_log,
                             hexlog=self.client_log, **(client or {}))

    def connect(self):
        self.server.connection_made()
        self.client.connection_made()
        self.pump()

    def pump(self):
        while self.to_server or self.to_client:
            while self.to_server:
                self.server.feed(self.to_server.pop(0))
            while self.to_client:
                self.client.feed(self.to_client.pop(0))

    def request(self, sid, did, data=None, status=0):
        """Client asks, server answers; returns the buffered response or None."""
        self.client.send(sid, did, data, status)
        self.pump()
        return self.client.pop_received(sid + 1, did)
