import pytest

from mcp_sync_auth._chain.tokens import TokenSet, parse_token_response
from mcp_sync_auth.errors import TokenEndpointError

SECRET_AT = "AT-marker-secret-0123456789"
SECRET_RT = "RT-marker-secret-9876543210"


def response(**overrides):
    body = {"access_token": SECRET_AT, "token_type": "Bearer", "expires_in": 100, "refresh_token": SECRET_RT}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def test_parse_sets_expiry_from_now():
    tokens = parse_token_response(response(scope="mcp"), now=1000.0, generation=3)
    assert tokens.expires_at == 1100.0
    assert tokens.obtained_at == 1000.0
    assert tokens.generation == 3
    assert tokens.scope == "mcp"


def test_repr_and_str_show_no_secret():
    tokens = parse_token_response(response(), now=0.0, generation=1)
    for text in (repr(tokens), str(tokens)):
        assert SECRET_AT not in text
        assert SECRET_RT not in text
        assert "generation=1" in text


def test_refresh_without_new_refresh_token_keeps_the_old_one_and_scope():
    previous = parse_token_response(response(scope="a b"), now=0.0, generation=1)
    rotated = parse_token_response(
        response(refresh_token=..., scope=..., access_token="other"), now=5.0, generation=2, previous=previous
    )
    assert rotated.refresh_token == SECRET_RT
    assert rotated.scope == "a b"


@pytest.mark.parametrize(
    "bad",
    [
        {"access_token": None},
        {"access_token": ""},
        {"access_token": 42},
        {"token_type": "mac"},
        {"token_type": None},
        {"expires_in": -1},
        {"expires_in": "soon"},
        {"expires_in": float("nan")},
        {"expires_in": True},
        {"expires_in": 10**12},
        {"refresh_token": 7},
        {"refresh_token": ""},
        {"scope": 5},
        {"access_token": "x" * (70 * 1024)},
        {"access_token": "line\nbreak"},
    ],
)
def test_wrong_shapes_raise_our_error_without_secrets(bad):
    with pytest.raises(TokenEndpointError) as info:
        parse_token_response(response(**bad), now=0.0, generation=1)
    assert info.value.ambiguous
    assert SECRET_AT not in str(info.value) and SECRET_RT not in str(info.value)


def test_numeric_string_expires_in_and_list_scope_are_accepted():
    tokens = parse_token_response(response(expires_in="60", scope=["a", "b"]), now=0.0, generation=1)
    assert tokens.expires_at == 60.0
    assert tokens.scope == "a b"


def test_skew_is_capped_by_lifetime_so_short_tokens_are_not_refreshed_on_every_call():
    short = TokenSet("at", expires_at=10.0, obtained_at=0.0)
    # A 60 s skew on a 10 s token would make it "stale" at birth; the cap keeps 75% of its life.
    assert short.effective_skew(60.0) == pytest.approx(2.5)
    assert short.is_fresh(7.0, 60.0)
    assert not short.is_fresh(7.6, 60.0)
    assert short.is_usable(9.9)
    assert not short.is_usable(10.0)
    long_lived = TokenSet("at", expires_at=3600.0, obtained_at=0.0)
    assert long_lived.effective_skew(60.0) == 60.0


def test_token_without_expiry_is_always_fresh():
    forever = TokenSet("at", expires_at=None)
    assert forever.is_fresh(1e12, 60.0)


def test_json_round_trip():
    tokens = parse_token_response(response(scope="s"), now=12.5, generation=9)
    assert TokenSet.from_json(tokens.to_json()) == tokens


@pytest.mark.parametrize(
    "field,value",
    [("access_token", None), ("generation", -1), ("generation", True), ("expires_at", "x"), ("scope", 1),
     ("refresh_token", 1), ("obtained_at", None), ("token_type", 3)],
)
def test_from_json_rejects_wrong_shapes(field, value):
    data = TokenSet("at", refresh_token="rt", expires_at=5.0).to_json()
    data[field] = value
    with pytest.raises(ValueError):
        TokenSet.from_json(data)
