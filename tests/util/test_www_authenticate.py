"""The RFC 9110 grammar lives in _util (the MCP client uses it too); its cases are in
tests/oauth/test_challenge.py, beside the Bearer interpretation."""

from mcp_sync_auth._oauth import challenge
from mcp_sync_auth._util import www_authenticate
from mcp_sync_auth._util.www_authenticate import parse_www_authenticate, www_authenticate_value


def test_the_oauth_layer_reexports_the_grammar_unchanged():
    for name in ("MAX_HEADER_LENGTH", "Challenge", "HeaderSource", "parse_www_authenticate"):
        assert getattr(challenge, name) is getattr(www_authenticate, name)


def test_any_scheme_is_parsed_and_header_lines_are_joined():
    value = www_authenticate_value({"WWW-Authenticate": ['Basic realm="a"', "DPoP algs=ES256"], "Other": "x"})
    assert value == 'Basic realm="a", DPoP algs=ES256'
    assert [(c.scheme, dict(c.params)) for c in parse_www_authenticate(value)] == [
        ("basic", {"realm": "a"}),
        ("dpop", {"algs": "ES256"}),
    ]
    assert www_authenticate_value({"Other": "x"}) is None
