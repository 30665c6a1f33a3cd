"""The device authorization response is read strictly: shapes no honest server sends, refused clearly.

These are the only device tests without a server: StrictAuthServer never sends such answers.
"""

import pytest

from mcp_sync_auth import AuthorizationFailed
from mcp_sync_auth._oauth.device import read_device_authorization

ENDPOINT = "https://as.example/device"
SECRET = "DEVICE-CODE-SECRET"
GOOD = {
    "device_code": SECRET,
    "user_code": "BCDF-GHJK",
    "verification_uri": "https://as.example/device",
    "expires_in": 600,
}


def read(**changes):
    document = {**GOOD, **changes}
    return read_device_authorization({k: v for k, v in document.items() if v is not ...}, ENDPOINT)


def test_a_good_answer_without_interval_polls_every_five_seconds():
    grant = read()
    assert grant.shown.interval == 5 and grant.shown.expires_in == 600
    assert grant.shown.verification_uri_complete is None
    assert SECRET not in repr(grant) and SECRET not in repr(grant.shown)


def test_an_interval_of_zero_is_polled_at_one_second_not_in_a_busy_loop():
    assert read(interval=0).shown.interval == 1


def test_googles_older_verification_url_is_read():
    assert read(verification_uri=..., verification_url="https://www.google.com/device").shown.verification_uri == (
        "https://www.google.com/device"
    )


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"device_code": ...}, "'device_code'"),
        ({"device_code": 7}, "'device_code'"),
        ({"device_code": "a b\n"}, "'device_code'"),
        ({"user_code": ...}, "'user_code'"),
        ({"user_code": "x" * 65}, "'user_code'"),
        ({"user_code": "AB\x1b[2JCD"}, "control characters"),
        ({"verification_uri": ...}, "'verification_uri'"),
        ({"verification_uri": "http://as.example/device"}, "https://"),
        ({"verification_uri": "javascript:alert(1)"}, "'verification_uri'"),
        ({"verification_uri_complete": "http://evil.example/?user_code=X"}, "'verification_uri_complete'"),
        ({"expires_in": ...}, "'expires_in'"),
        ({"expires_in": "600"}, "'expires_in'"),
        ({"expires_in": True}, "'expires_in'"),
        ({"expires_in": 0}, "'expires_in'"),
        ({"expires_in": 10**9}, "'expires_in'"),
        ({"interval": -1}, "'interval'"),
        ({"interval": float("nan")}, "'interval'"),
        ({"interval": 601}, "'interval'"),
    ],
)
def test_a_bad_answer_is_refused_naming_the_field_never_the_device_code(changes, said):
    with pytest.raises(AuthorizationFailed, match="device authorization endpoint") as caught:
        read(**changes)
    assert said in str(caught.value)
    assert SECRET not in str(caught.value)


def test_http_to_loopback_is_allowed_for_local_servers():
    assert read(verification_uri="http://127.0.0.1:8080/device").shown.verification_uri.startswith("http://127.0.0.1")
