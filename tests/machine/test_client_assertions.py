"""The client assertions of private_key_jwt (RFC 7523 §2.2, §3): what is signed, with which key and
algorithm, and the errors for keys that cannot be used (never quoting the key)."""

import jwt
import pytest

from mcp_sync_auth import ConfigurationError, MCPAuth
from mcp_sync_auth._oauth.assertions import ClientAssertions
from mcp_sync_auth._oauth.signing import SigningKey

from ..clocks import ManualClock
from .keys import make_key, private_pem, public_pem

AUDIENCE = "https://as.example"


@pytest.mark.parametrize(("kind", "wanted", "algorithm"), [
    ("ec", None, "ES256"), ("rsa", None, "RS256"), ("rsa", "PS256", "PS256"), ("ed25519", None, "EdDSA"),
])
def test_each_key_type_signs_assertions_the_server_can_check(kind, wanted, algorithm):
    key = make_key(kind)
    clock = ManualClock(now=1_700_000_000)
    assertions = ClientAssertions("client-7", key=SigningKey.from_pem(private_pem(key), wanted), clock=clock)
    first, second = assertions(AUDIENCE), assertions(AUDIENCE)
    assert jwt.get_unverified_header(first)["alg"] == algorithm
    claims = jwt.decode(first, public_pem(key), algorithms=[algorithm], audience=AUDIENCE,
                        options={"verify_exp": False})
    assert claims["iss"] == claims["sub"] == "client-7"
    assert claims["aud"] == AUDIENCE
    assert claims["iat"] == 1_700_000_000 and claims["exp"] - claims["iat"] == 60  # short-lived
    other = jwt.decode(second, public_pem(key), algorithms=[algorithm], audience=AUDIENCE,
                       options={"verify_exp": False})
    assert other["jti"] != claims["jti"] and len(claims["jti"]) >= 32  # one per request


@pytest.mark.parametrize(("kind", "wanted", "said"), [
    ("ec", "RS256", "an EC P-256 key, which cannot sign RS256"),
    ("rsa", "ES256", "an RSA key, which cannot sign ES256"),
    ("ed25519", "PS256", "an Ed25519 key, which cannot sign PS256"),
    ("ec384", None, "ES256 needs the P-256 curve"),
    ("rsa1024", None, "1024-bit RSA key"),
    ("ed448", None, "cannot sign here"),
    ("ec", "HS256", "unsupported signing algorithm 'HS256'"),
    ("ec", "none", "unsupported signing algorithm 'none'"),
])
def test_a_key_that_cannot_sign_as_asked_is_refused_when_the_auth_is_made(kind, wanted, said):
    pem = private_pem(make_key(kind))
    with pytest.raises(ConfigurationError, match=said) as caught:
        MCPAuth("https://mcp.example/mcp", client_id="c", private_key=pem, signing_algorithm=wanted,
                grant_type="client_credentials")
    assert pem.splitlines()[1] not in str(caught.value)


@pytest.mark.parametrize(("text", "said"), [
    ("not a key at all", "is not a PEM private key"),
    ("PUBLIC", "is not a PEM private key"),
    ("ENCRYPTED", "is encrypted"),
])
def test_text_that_is_no_usable_private_key_is_refused(text, said):
    key = make_key("ec")
    pem = {"PUBLIC": public_pem(key), "ENCRYPTED": private_pem(key, b"pw")}.get(text, text)
    with pytest.raises(ConfigurationError, match=said) as caught:
        SigningKey.from_pem(pem)
    assert "MII" not in str(caught.value)


def test_a_key_file_is_read_when_the_auth_is_made(tmp_path):
    missing = tmp_path / "nowhere.pem"
    machine = {"client_id": "c", "grant_type": "client_credentials"}
    with pytest.raises(ConfigurationError, match=r"cannot read the private key in .*nowhere\.pem"):
        MCPAuth("https://mcp.example/mcp", private_key_file=str(missing), **machine)
    path = tmp_path / "key.pem"
    path.write_text(private_pem(make_key("ed25519")))
    auth = MCPAuth("https://mcp.example/mcp", private_key_file=str(path), **machine)
    assert "BEGIN" not in repr(auth)


def test_a_provider_gives_the_assertion_for_the_audience_it_is_told():
    asked = []

    def provider(audience):
        asked.append(audience)
        return "header.claims.signature"

    assertions = ClientAssertions("c", provider=provider, clock=ManualClock())
    assert assertions(AUDIENCE) == "header.claims.signature" and asked == [AUDIENCE]
    broken = ClientAssertions("c", provider=lambda audience: None, clock=ManualClock())
    with pytest.raises(ConfigurationError, match="did not return a compact JWT"):
        broken(AUDIENCE)


@pytest.mark.parametrize(("options", "said"), [
    ({"private_key": "x", "private_key_file": "y"}, "give one of"),
    ({"private_key": "x", "client_id": None}, "needs the client_id"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "private_key_jwt needs private_key"),
    ({"grant_type": "client_credentials"}, "needs client_id and client_secret \\(or a private key\\)"),
])
def test_settings_that_cannot_work_are_refused(options, said):
    with pytest.raises(ConfigurationError, match=said):
        MCPAuth("https://mcp.example/mcp", **{"client_id": "c", **options})


def test_the_key_is_never_in_a_repr():
    pem = private_pem(make_key("ec"))
    auth = MCPAuth("https://mcp.example/mcp", client_id="c", private_key=pem, grant_type="client_credentials")
    shown = repr(auth) + repr(auth._source.client) + repr(auth._source._flow._assertions)
    assert pem.splitlines()[1] not in shown and "BEGIN" not in shown
