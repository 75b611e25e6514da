"""data_storage: a received message, as the original API hands it to callbacks and receive()."""


class data_storage(dict):
    KEY_STATUS = 'status'
    KEY_SERVICE_ID = 'service_id'
    KEY_DATA_ID = 'data_id'
    KEY_DATA = 'data'

    def get_status(self, default=None):
        return self.get(self.KEY_STATUS, default)

    def get_service_id(self, default=None):
        return self.get(self.KEY_SERVICE_ID, default)

    def get_data_id(self, default=None):
        return self.get(self.KEY_DATA_ID, default)

    def get_data(self, default=None):
        return self.get(self.KEY_DATA, default)


def make_message(service_id, data_id, status, data):
    return data_storage(service_id=service_id, data_id=data_id, status=status, data=data)
