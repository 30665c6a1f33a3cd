import threading

import pytest

from .scripted import Scripted


@pytest.fixture
def scripted():
    fake = Scripted()
    thread = threading.Thread(target=fake.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()
