"""StrictAuthServer's device authorization grant (RFC 8628), over raw HTTP: as strict as a real one."""

import pytest

from mcp_sync_auth.testing import StrictAuthServer

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CLIENT_GRANTS = ["authorization_code", "refresh_token", DEVICE_GRANT]


@pytest.fixture
def strict(clock):
    with StrictAuthServer(clock=clock, device_authorization=True, token_marker="SECRETMARK") as server:
        yield server


@pytest.fixture
def device_client(strict):
    return strict.register_client(grant_types=DEVICE_CLIENT_GRANTS)


def authorize(strict, http, client_id, **extra):
    form = {"client_id": client_id, "resource": strict.resource_identifier, "scope": "mcp", **extra}
    return http.post(strict.device_authorization_endpoint, data=form, timeout=10)


def poll(strict, http, client_id, device_code, **extra):
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id}
    form.update({"resource": strict.resource_identifier, **extra})
    return http.post(strict.token_endpoint, data=form, timeout=10)


def error_of(response):
    assert response.status_code == 400, response.text
    return response.json()["error"]


def test_off_by_default_and_advertised_when_on(clock, http):
    with StrictAuthServer(clock=clock) as off:
        document = off.authorization_server_metadata()
        assert "device_authorization_endpoint" not in document
        assert DEVICE_GRANT not in document["grant_types_supported"]
        assert http.post(off.device_authorization_endpoint, data={"client_id": "x"}, timeout=10).status_code == 404
        client_id = off.register_client(grant_types=DEVICE_CLIENT_GRANTS)
        answer = poll(off, http, client_id, "anything")
        assert error_of(answer) == "unsupported_grant_type"
        off.device_authorization = True
        document = http.get(off.authorization_server_metadata_url, timeout=10).json()
        assert document["device_authorization_endpoint"] == off.base_url + "/device_authorization"
        assert document["grant_types_supported"][-1] == DEVICE_GRANT


def test_a_device_authorization_answer_has_every_field(strict, http, device_client):
    response = authorize(strict, http, device_client)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert body["verification_uri"] == strict.verification_uri
    assert body["verification_uri_complete"] == f"{strict.verification_uri}?user_code={body['user_code']}"
    assert (body["expires_in"], body["interval"]) == (600, 5)
    (pending,) = strict.pending_device_codes()
    assert pending.user_code == body["user_code"] and pending.client_id == device_client
    assert pending.scope == "mcp" and pending.resource == strict.resource_identifier
    assert "SECRETMARK" not in repr(pending)  # the device code is not in the test's view either
    assert strict.audit.device.authorizations_issued == 1


def test_polls_faster_than_the_interval_get_slow_down_and_a_longer_interval(strict, http, device_client, clock):
    code = authorize(strict, http, device_client).json()["device_code"]
    assert error_of(poll(strict, http, device_client, code)) == "slow_down"  # at once: too early
    clock.advance(5)  # the interval is 10 s now, counted from that poll
    assert error_of(poll(strict, http, device_client, code)) == "slow_down"
    clock.advance(15)
    assert error_of(poll(strict, http, device_client, code)) == "authorization_pending"
    clock.advance(15)
    assert error_of(poll(strict, http, device_client, code)) == "authorization_pending"
    device = strict.audit.device
    assert (device.polls, device.slow_downs, device.pending) == (4, 2, 2)
    assert strict.pending_device_codes()[0].interval == 15


def test_unknown_device_code_is_invalid_grant(strict, http, device_client):
    assert error_of(poll(strict, http, device_client, "never-issued")) == "invalid_grant"
    assert strict.audit.device.polls == 0


def test_a_code_gives_tokens_once_and_the_chain_rotates(strict, http, device_client, clock):
    code = authorize(strict, http, device_client).json()["device_code"]
    strict.approve_device(strict.pending_device_codes()[0].user_code)
    clock.advance(5)
    first = poll(strict, http, device_client, code)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "mcp" and "refresh_token" in tokens
    clock.advance(5)
    assert error_of(poll(strict, http, device_client, code)) == "invalid_grant"  # spent
    assert strict.pending_device_codes() == []
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": device_client}
    refresh["resource"] = strict.resource_identifier
    assert http.post(strict.token_endpoint, data=refresh, timeout=10).status_code == 200
    (chain,) = strict.chains()
    assert chain.generation == 1 and chain.resource == strict.resource_identifier


def test_another_clients_poll_is_refused_and_spends_nothing(strict, http, device_client, clock):
    other = strict.register_client(grant_types=DEVICE_CLIENT_GRANTS)
    code = authorize(strict, http, device_client).json()["device_code"]
    strict.approve_device(strict.pending_device_codes()[0].user_code)
    clock.advance(5)
    assert error_of(poll(strict, http, other, code)) == "invalid_grant"
    assert poll(strict, http, device_client, code).status_code == 200


def test_denied_then_access_denied_and_expired_then_expired_token(strict, http, device_client, clock):
    denied = authorize(strict, http, device_client).json()
    strict.deny_device(denied["user_code"])
    clock.advance(5)
    assert error_of(poll(strict, http, device_client, denied["device_code"])) == "access_denied"
    late = authorize(strict, http, device_client).json()
    clock.advance(601)
    assert error_of(poll(strict, http, device_client, late["device_code"])) == "expired_token"
    with pytest.raises(KeyError, match="no longer pending"):
        strict.approve_device(late["user_code"])
    with pytest.raises(KeyError, match="unknown user code"):
        strict.approve_device("BCDF-GHJK")


def test_the_device_request_is_checked_like_an_authorization_request(strict, http, device_client):
    code_flow_only = strict.register_client()
    assert error_of(authorize(strict, http, code_flow_only)) == "unauthorized_client"
    assert error_of(authorize(strict, http, device_client, resource="https://elsewhere.example/mcp")) == (
        "invalid_target"
    )
    assert error_of(authorize(strict, http, device_client, scope="admin")) == "invalid_scope"
    no_resource = {"client_id": device_client, "scope": "mcp"}
    assert error_of(http.post(strict.device_authorization_endpoint, data=no_resource, timeout=10)) == "invalid_target"
    assert http.post(strict.device_authorization_endpoint, data={"client_id": "nobody"}, timeout=10).status_code == 401
    device = strict.audit.device
    assert device.authorizations_issued == 0 and device.requests == 5
    assert device.authorization_errors == {
        "unauthorized_client": 1,
        "invalid_target": 2,
        "invalid_scope": 1,
        "invalid_client": 1,
    }


def test_a_confidential_client_must_authenticate(strict, http):
    client_id = strict.register_client(
        token_endpoint_auth_method="client_secret_post", grant_types=DEVICE_CLIENT_GRANTS
    )
    assert authorize(strict, http, client_id).status_code == 401  # no secret
    secret = strict.get_client(client_id).client_secret
    answer = authorize(strict, http, client_id, client_secret=secret)
    assert answer.status_code == 200
    assert "client_secret" not in strict.audit.device.last_request_params
