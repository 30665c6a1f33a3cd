import pytest
from requests.structures import CaseInsensitiveDict

from mcp_sync_auth._util.headers import bearer_token


@pytest.mark.parametrize(
    "headers,token",
    [
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"authorization": "bearer  abc "}, "abc"),  # any case, in a plain dict too; blanks around go
        (CaseInsensitiveDict({"AUTHORIZATION": "BEARER abc"}), "abc"),
        ({"Authorization": b"Bearer abc"}, "abc"),  # requests sends bytes values as they are
        ({"Authorization": "Basic YTpi"}, None),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": "Bearer   "}, None),
        ({"Authorization": "Bearerabc"}, None),
        ({"X-Other": "Bearer abc"}, None),
        ({}, None),
    ],
)
def test_bearer_token(headers, token):
    assert bearer_token(headers) == token
