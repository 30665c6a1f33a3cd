"""DPoP against servers that misbehave, on 127.0.0.1: one that demands a new nonce for ever (at the
token endpoint and at the resource) gets one retry and then our answer, never a loop and never a
refresh for a token that was not the problem; a token that says DPoP but has no key is never sent
as Bearer."""

import http.server
import itertools
import json
import threading
from typing import ClassVar

import jwt
import pytest
import requests

from mcp_sync_auth import AuthorizationRequired, ChainKey, ChainRecord, FileTokenStore, MCPAuth, TokenEndpointError
from mcp_sync_auth._chain.tokens import TokenSet, parse_token_response
from mcp_sync_auth._oauth.dpop import DPoPKey


class NonceForEver(http.server.BaseHTTPRequestHandler):
    """/token: 400 use_dpop_nonce; anything else: 401 DPoP use_dpop_nonce. A new nonce each time."""

    seen: ClassVar[list] = []  # (path, the DPoP proof's claims)
    counter = itertools.count()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proof = self.headers.get("DPoP")
        claims = jwt.decode(proof, options={"verify_signature": False}) if proof else None
        type(self).seen.append((self.path, claims))
        nonce = f"nonce-{next(type(self).counter)}"
        if self.path == "/token":
            self._answer(400, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": nonce})
        else:
            challenge = 'DPoP error="use_dpop_nonce", algs="ES256"'
            self._answer(401, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": nonce, "WWW-Authenticate": challenge})

    def _answer(self, status, body, headers):
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile():
    NonceForEver.seen = []
    NonceForEver.counter = itertools.count()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NonceForEver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _stored_dpop_chain(store_dir, base, clock, *, expired, key=True):
    url, token_endpoint = f"{base}/mcp", f"{base}/token"
    store = FileTokenStore(store_dir)
    now = clock()
    tokens = TokenSet(
        "at-bound", token_type="DPoP", refresh_token="rt-bound", obtained_at=now - 10,
        expires_at=now - 1 if expired else now + 3600,
        dpop_key=DPoPKey.generate().private_jwk() if key else None,
    )
    store.save(ChainRecord(ChainKey(url, token_endpoint, "client-1"), 1, tokens, token_endpoint=token_endpoint))
    return MCPAuth(url, store=store, client_id="client-1", token_endpoint=token_endpoint, clock=clock), url


def test_a_resource_that_asks_for_a_nonce_for_ever_gets_one_retry(hostile, store_dir, clock):
    auth, url = _stored_dpop_chain(store_dir, hostile, clock, expired=False)
    answer = requests.post(url, json={}, auth=auth, timeout=10)
    assert answer.status_code == 401 and "asked for a DPoP nonce again" in answer.reason
    (first_path, first), (second_path, second) = NonceForEver.seen
    assert first_path == second_path == "/mcp"
    assert "nonce" not in first and second["nonce"] == "nonce-0"  # the nonce it was given, once
    assert first["jti"] != second["jti"]  # a fresh proof for the resend
    assert auth._source.token().access_token == "at-bound"  # no refresh: the token was not the problem


def test_a_token_endpoint_that_asks_for_a_nonce_for_ever_gets_one_retry(hostile, store_dir, clock):
    auth, _ = _stored_dpop_chain(store_dir, hostile, clock, expired=True)
    with pytest.raises(TokenEndpointError) as caught:
        auth.access_token()
    assert caught.value.error_code == "use_dpop_nonce"
    (_, first), (_, second) = NonceForEver.seen
    assert "nonce" not in first and second["nonce"] == "nonce-0" and first["jti"] != second["jti"]
    (record,) = FileTokenStore(store_dir).records()
    assert not record.is_dead and record.tokens.refresh_token == "rt-bound"  # nothing spent, nothing lost


def test_a_dpop_token_without_its_key_is_never_sent_as_bearer(hostile, store_dir, clock):
    auth, url = _stored_dpop_chain(store_dir, hostile, clock, expired=False, key=False)
    with pytest.raises(AuthorizationRequired, match="DPoP-bound token has no key"):
        requests.post(url, json={}, auth=auth, timeout=10)
    assert NonceForEver.seen == []


def test_a_dpop_token_for_a_request_that_proved_no_key_is_refused():
    answer = {"access_token": "at", "token_type": "DPoP", "expires_in": 60}
    with pytest.raises(TokenEndpointError, match="cannot be sent as Bearer"):
        parse_token_response(answer, now=0.0, generation=1)
    bound = parse_token_response(answer, now=0.0, generation=1, dpop_key="{}")
    assert bound.token_type == "DPoP" and bound.dpop_key == "{}"
