"""Services, status names and whitelist entries beyond the built-in ones (Engine methods).

Loaded on first use (see Engine.__getattr__): a board that serves only the
built-in services and their data never holds this code.
"""


def add_service(self, req_sid, resp_sid, req_name=None, resp_name=None):
    taken = req_sid in self._requests or req_sid in self._responses
    if taken or resp_sid in self._requests or resp_sid in self._responses or resp_sid == req_sid:
        from . import const
        raise (const.RequestSidExistsError if taken else const.ResponseSidExistsError)(
            'service id %r is already in use' % (req_sid if taken else resp_sid,))
    self._requests[req_sid] = resp_sid
    self._responses[resp_sid] = req_sid
    if req_name is not None:
        self._sid_names[req_sid] = req_name
    if resp_name is not None:
        self._sid_names[resp_sid] = resp_name


def add_status(self, status, name):
    self._status_names[status] = name


def add_msg_to_auth_whitelist_(self, service_id, data_id):
    self._whitelist.add((service_id, data_id))
