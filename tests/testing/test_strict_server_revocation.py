"""The strict server's revocation endpoint (RFC 7009), over raw HTTP: it authenticates the client as
the token endpoint does, revokes a refresh token's whole chain or one access token, answers 200 for
a token it does not know, keeps an audit of what it revoked, and can be made to fail or disappear."""

import pytest

from mcp_sync_auth.testing import Revocation, StrictAuthServer

from ..workers import echo_call


def bearer(token):
    def attach(request):
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    return attach


def revoke(http, server, token, client_id, hint=None, **extra):
    form = {"token": token, "client_id": client_id, **extra}
    if hint is not None:
        form["token_type_hint"] = hint
    return http.post(server.revocation_endpoint, data=form, timeout=30)


def refresh(http, server, client_id, refresh_token):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id,
            "resource": server.mcp_url}
    answer = http.post(server.token_endpoint, data=form, timeout=30)
    return answer.json() if answer.status_code == 200 else answer.json()["error"]


def test_the_metadata_advertises_the_endpoint(server, http):
    document = http.get(server.authorization_server_metadata_url, timeout=30).json()
    assert document["revocation_endpoint"] == server.revocation_endpoint


def test_revoking_a_refresh_token_ends_its_whole_chain(server, client_id, http):
    tokens = server.mint_tokens(client_id)
    rotated = refresh(http, server, client_id, tokens["refresh_token"])  # a second generation
    assert revoke(http, server, rotated["refresh_token"], client_id, "refresh_token").status_code == 200
    assert server.revocations() == (Revocation("refresh_token", client_id, "refresh_token"),)
    assert refresh(http, server, client_id, rotated["refresh_token"]) == "invalid_grant"
    for access_token in (tokens["access_token"], rotated["access_token"]):  # every access token of the chain
        assert echo_call(http, server.mcp_url, bearer(access_token)) == "http 401"


def test_revoking_an_access_token_refuses_it_and_leaves_the_chain(server, client_id, http):
    tokens = server.mint_tokens(client_id)
    assert echo_call(http, server.mcp_url, bearer(tokens["access_token"])) == "ok"
    # No hint: the server looks the token up among both kinds.
    assert revoke(http, server, tokens["access_token"], client_id).status_code == 200
    assert server.revocations() == (Revocation("access_token", client_id, None),)
    assert echo_call(http, server.mcp_url, bearer(tokens["access_token"])) == "http 401"
    assert isinstance(refresh(http, server, client_id, tokens["refresh_token"]), dict)  # the chain lives


def test_a_wrong_hint_does_not_stop_the_lookup(server, client_id, http):
    tokens = server.mint_tokens(client_id)
    assert revoke(http, server, tokens["refresh_token"], client_id, "access_token").status_code == 200
    assert server.revocations()[0].kind == "refresh_token"
    assert not server.is_chain_alive(tokens["refresh_token"])


def test_an_unknown_token_is_answered_200(server, client_id, http):
    answer = revoke(http, server, "no-such-token", client_id, "refresh_token")
    assert answer.status_code == 200 and answer.content == b""
    assert server.revocations() == (Revocation("unknown", client_id, "refresh_token"),)


def test_another_clients_token_is_left_alone(server, client_id, http):
    tokens = server.mint_tokens(client_id)
    other = server.register_client()
    assert revoke(http, server, tokens["refresh_token"], other, "refresh_token").status_code == 200
    assert server.revocations()[0].kind == "not_owned"
    assert server.is_chain_alive(tokens["refresh_token"])


@pytest.mark.parametrize("credentials", ["none", "wrong secret", "unknown client"])
def test_the_client_must_authenticate_as_registered(server, http, credentials):
    client_id = server.register_client(client_secret="right", token_endpoint_auth_method="client_secret_post")
    tokens = server.mint_tokens(client_id)
    extra = {"client_secret": "wrong"} if credentials == "wrong secret" else {}
    who = "somebody-else" if credentials == "unknown client" else client_id
    answer = revoke(http, server, tokens["refresh_token"], who, "refresh_token", **extra)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert server.revocations() == () and server.refused_revocations == 1
    assert server.is_chain_alive(tokens["refresh_token"])
    right = revoke(http, server, tokens["refresh_token"], client_id, "refresh_token", client_secret="right")
    assert right.status_code == 200 and not server.is_chain_alive(tokens["refresh_token"])


def test_an_unsupported_hint_and_a_missing_token_are_refused(server, client_id, http):
    tokens = server.mint_tokens(client_id)
    answer = revoke(http, server, tokens["refresh_token"], client_id, "id_token")
    assert answer.status_code == 400 and answer.json()["error"] == "unsupported_token_type"
    answer = http.post(server.revocation_endpoint, data={"client_id": client_id}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert server.revocations() == () and server.is_chain_alive(tokens["refresh_token"])


def test_the_fault_switch_answers_503_and_revokes_nothing(server, client_id, http):
    tokens = server.mint_tokens(client_id)
    server.fail_revocations(2)
    for _ in range(2):
        answer = revoke(http, server, tokens["refresh_token"], client_id, "refresh_token")
        assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"
    assert server.is_chain_alive(tokens["refresh_token"]) and server.refused_revocations == 2
    assert revoke(http, server, tokens["refresh_token"], client_id, "refresh_token").status_code == 200


def test_revocation_can_be_turned_off(clock, http):
    with StrictAuthServer(clock=clock, revocation=False) as strict:
        client_id = strict.register_client()
        tokens = strict.mint_tokens(client_id)
        document = http.get(strict.authorization_server_metadata_url, timeout=30).json()
        assert "revocation_endpoint" not in document
        assert revoke(http, strict, tokens["refresh_token"], client_id).status_code == 404
        assert strict.is_chain_alive(tokens["refresh_token"])
        strict.revocation = True
        assert http.get(strict.authorization_server_metadata_url, timeout=30).json()["revocation_endpoint"]
