"""The registry: what a program declared. Which sid answers which, names for the logs, the whitelist, the callbacks.

A part of its own, not fields of the engine: on MicroPython every method
looked up on an object first probes the object's own attribute table, and
a table that is full is probed to its end (docs/benchmarks.md).
"""
from . import const


class Registry:
    def __init__(self):
        self.requests = {}       # request sid -> response sid: the built-in services, then add_service()
        self.responses = {}      # response sid -> request sid
        for req in (const.SID_AUTH_REQUEST, const.SID_CHANNEL_NAME_REQUEST, const.SID_READ_REQUEST,
                    const.SID_WRITE_REQUEST, const.SID_EXECUTE_REQUEST):
            self.requests[req] = req + 1
            self.responses[req + 1] = req
        self.sid_names = {}      # names beyond the built-in ones of const, here and below
        self.did_names = {}      # (sid, did) -> name
        self.status_names = {}
        self.whitelist = set()   # (sid, did) that pass before authentification
        self.callbacks = {}      # (sid or None, did or None) -> (callback, args, kwargs)

    def add_service(self, req_sid, resp_sid, req_name=None, resp_name=None):
        taken = req_sid in self.requests or req_sid in self.responses
        if taken or resp_sid in self.requests or resp_sid in self.responses or resp_sid == req_sid:
            from . import errors
            raise (errors.RequestSidExistsError if taken else errors.ResponseSidExistsError)(
                'service id %r is already in use' % (req_sid if taken else resp_sid,))
        self.requests[req_sid] = resp_sid
        self.responses[resp_sid] = req_sid
        if req_name is not None:
            self.sid_names[req_sid] = req_name
        if resp_name is not None:
            self.sid_names[resp_sid] = resp_name

    def add_data(self, service_id, data_id, name):
        for sid in service_id if isinstance(service_id, (list, tuple)) else (service_id,):
            self.did_names[(sid, data_id)] = name

    def response_sid(self, sid):
        """Where the answer to a request on sid comes: its service's response sid, or for an unknown even
        sid the conventional sid + 1, on which a peer that knows no such service says so; None for a
        response."""
        resp = self.requests.get(sid)
        if resp is None and isinstance(sid, int) and sid % 2 == 0 and sid not in self.responses and \
                (sid + 1) not in self.requests:
            resp = sid + 1
        return resp

    def find_callback(self, sid, did):
        """The callback of (sid, did), else of (sid, any), of (any, did), of any message; or None."""
        callbacks = self.callbacks
        return callbacks.get((sid, did)) or callbacks.get((sid, None)) or callbacks.get((None, did)) or \
            callbacks.get((None, None))
