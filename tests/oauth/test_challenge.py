import contextlib
import sys

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from mcp_sync_auth import ChallengeError, MCPAuthError
from mcp_sync_auth._oauth.challenge import BearerChallenge, bearer_challenge
from mcp_sync_auth._util.www_authenticate import MAX_HEADER_LENGTH, Challenge, parse_www_authenticate

from ..docserver import DocServer


def summary(value):
    return [(c.scheme, dict(c.params), c.token68) for c in parse_www_authenticate(value)]


# --- parse_www_authenticate: well-formed input -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer", [("bearer", {}, None)]),
        ('Bearer realm="mcp"', [("bearer", {"realm": "mcp"}, None)]),
        (
            'Bearer error="invalid_token", error_description="The access token expired"',
            [("bearer", {"error": "invalid_token", "error_description": "The access token expired"}, None)],
        ),
        # RFC 9110 §11.6.1's own example: two challenges, an escaped quote, a token value.
        (
            'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
            [
                ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}, None),
                ("basic", {"realm": "simple"}, None),
            ],
        ),
        ("Basic dXNlcjpwYXNzd29yZA==", [("basic", {}, "dXNlcjpwYXNzd29yZA==")]),
        ("Basic dXNl+/cjp-._~", [("basic", {}, "dXNl+/cjp-._~")]),
        ("Basic abc=", [("basic", {}, "abc=")]),
        ("Basic abc==, Bearer", [("basic", {}, "abc=="), ("bearer", {}, None)]),
        ("Bearer, Basic", [("bearer", {}, None), ("basic", {}, None)]),
        ("A b=c, Basic abc==, C", [("a", {"b": "c"}, None), ("basic", {}, "abc=="), ("c", {}, None)]),
        # Scheme and parameter names are case-insensitive; values keep their case.
        (
            'BEARER Scope="Read WRITE", ERROR=Invalid_Token',
            [("bearer", {"scope": "Read WRITE", "error": "Invalid_Token"}, None)],
        ),
        # BWS around "=", OWS around commas, leading and trailing whitespace.
        (
            '  Bearer realm = "x" ,scope= "a"  ,  error =e  ',
            [("bearer", {"realm": "x", "scope": "a", "error": "e"}, None)],
        ),
        ('Bearer\trealm="x"', [("bearer", {"realm": "x"}, None)]),
        # Empty list elements (RFC 9110 §5.6.1) and empty quoted values.
        (
            ',, Bearer realm="x",,, scope="",, , Basic ,',
            [("bearer", {"realm": "x", "scope": ""}, None), ("basic", {}, None)],
        ),
        ("", []),
        (" , ,\t", []),
        # Quoted strings: commas, equals signs, escapes of any VCHAR, obs-text.
        ('Bearer a="x, y=z", b="\\\\\\"\\q"', [("bearer", {"a": "x, y=z", "b": '\\"q'}, None)]),
        ('Bearer a="caf\xe9\t!"', [("bearer", {"a": "caf\xe9\t!"}, None)]),
        # A parameter order that puts the interesting one last still works.
        (
            'Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"',
            [
                (
                    "bearer",
                    {
                        "error": "insufficient_scope",
                        "scope": "files:read files:write",
                        "resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
                    },
                    None,
                )
            ],
        ),
    ],
)
def test_parses_well_formed_values(value, expected):
    assert summary(value) == expected


def test_challenges_are_frozen_and_compare_by_value():
    (one,) = parse_www_authenticate('Bearer realm="x"')
    (two,) = parse_www_authenticate('bearer REALM="x"')
    assert one == two == Challenge("bearer", {"realm": "x"}, None)
    with pytest.raises(AttributeError):
        one.scheme = "basic"
    with pytest.raises(TypeError):
        one.params["realm"] = "y"


# --- parse_www_authenticate: malformed input ---------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Bearer=x",  # no space between scheme and parameters
        'Bearer a="x',  # unterminated quoted string
        'Bearer a="x\\',  # escape at the very end
        'Bearer a="\x01"',  # control character inside quotes
        'Bearer a="x\\\x01"',  # escaped control character
        "Bearer a=b c",  # two values
        "Bearer x=1, a=",  # no value
        "Bearer a= ,b=c",  # no value before the comma
        "Bearer a=x=y",  # "=" is not a token character
        "Bearer a=https://x/y",  # unquoted URL: ":" and "/" are not token characters
        'Bearer a="1", A="2"',  # the same parameter twice (names are case-insensitive)
        "Basic abc, realm=x",  # a token68 followed by parameters
        '"Bearer"',  # no scheme
        "=x",
        "Bearer @",
        "Bearer a=\u20ac",  # non-Latin-1 outside quotes
        'Bearer a="\u20ac"',  # not obs-text inside quotes either
        "Bearer a=b;c",
        "Bearer\x00",
    ],
)
def test_malformed_values_raise_challenge_error(value):
    with pytest.raises(ChallengeError) as caught:
        parse_www_authenticate(value)
    assert "malformed WWW-Authenticate header" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Basic abc, realm=x", "token68 cannot be followed by auth-params"),
        ("Bearer=x", "expected a space after the auth-scheme"),
        ('Bearer a="x', "unterminated quoted-string"),
        ("Bearer a=1, A=2", "occurs twice"),
        ("Bearer a=b c", "expected ',' between auth-params"),
    ],
)
def test_messages_say_what_is_wrong(value, message):
    with pytest.raises(ChallengeError, match=message):
        parse_www_authenticate(value)


def test_challenge_error_is_one_of_ours_and_a_requests_exception():
    with pytest.raises(MCPAuthError):
        parse_www_authenticate("Bearer=")
    with pytest.raises(requests.RequestException):
        parse_www_authenticate("Bearer=")


def test_error_message_shows_cleaned_context_only():
    with pytest.raises(ChallengeError) as caught:
        parse_www_authenticate("Bearer a=\x1b[31mred" + "y" * 5000)
    message = str(caught.value)
    assert "\x1b" not in message
    assert len(message) < 300


def test_overlong_input_is_refused_before_parsing():
    ok = "Bearer " + ", ".join(f"p{i}=v" for i in range(1000))
    assert len(ok) < MAX_HEADER_LENGTH
    assert len(parse_www_authenticate(ok)[0].params) == 1000
    with pytest.raises(ChallengeError, match="too long"):
        parse_www_authenticate("Bearer realm=" + "x" * MAX_HEADER_LENGTH)


@pytest.mark.parametrize(
    "value",
    [
        "a" * (MAX_HEADER_LENGTH - 1),
        ", " * (MAX_HEADER_LENGTH // 2 - 1),
        "Bearer " + "a=b, " * (MAX_HEADER_LENGTH // 5 - 2),
        'Bearer a="' + "\\x" * (MAX_HEADER_LENGTH // 2 - 10) + '"',
        "Basic " + "A" * (MAX_HEADER_LENGTH - 10) + "=",
        "A, " * (MAX_HEADER_LENGTH // 3 - 1),
    ],
)
def test_work_is_bounded_on_large_inputs(value):
    # Work counted, not timed: the Python lines the parse executes grow linearly with the input (about
    # 10 per character at most today). A parser that backtracks would run hundreds of times as many.
    assert lines_executed(lambda: parse_www_authenticate(value)) <= 50 * len(value)


def lines_executed(call):
    """How many Python lines ``call`` executes (ChallengeError allowed): a measure of work that does not
    depend on the machine's speed or load."""
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return trace

    previous = sys.gettrace()  # e.g. a coverage tracer, put back afterwards
    sys.settrace(trace)
    try:
        with contextlib.suppress(ChallengeError):
            call()
    finally:
        sys.settrace(previous)
    return count


def test_non_string_input_is_a_challenge_error():
    with pytest.raises(ChallengeError):
        parse_www_authenticate(b"Bearer")


# --- property tests ----------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_raises_challenge_error(value):
    try:
        result = parse_www_authenticate(value)
    except ChallengeError:
        return
    assert all(isinstance(c, Challenge) for c in result)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=' \t,="\\\x01\x7f\xe9\u20acaZ0/+-._~!#', max_size=60))
def test_header_like_text_only_ever_raises_challenge_error(value):
    with contextlib.suppress(ChallengeError):
        parse_www_authenticate(value)


TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TCHARS, min_size=1, max_size=8)
token68s = st.builds(
    lambda body, pad: body + "=" * pad,
    st.text(alphabet="abcXYZ019-._~+/", min_size=1, max_size=12),
    st.integers(0, 2),
)
quoted_chars = st.characters(min_codepoint=0x20, max_codepoint=0xFF).filter(lambda ch: not 0x7F <= ord(ch) < 0x80)
values = st.one_of(tokens, st.text(alphabet=quoted_chars | st.just("\t"), max_size=12))


params_strategy = st.dictionaries(tokens, values, max_size=4).map(
    lambda d: dict({name.lower(): (name, value) for name, value in d.items()}.values())
)
challenge_strategy = st.tuples(tokens, st.one_of(st.none(), token68s, params_strategy))


def quote(value):
    if value and all(ch in TCHARS for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(scheme, body, spaces):
    if body is None or body == {}:
        return scheme
    if isinstance(body, str):
        return f"{scheme} {body}"
    return scheme + " " + (spaces + "," + spaces).join(f"{name}{spaces}={spaces}{quote(v)}" for name, v in body.items())


@settings(max_examples=500, deadline=None)
@given(st.lists(challenge_strategy, max_size=4), st.sampled_from(["", " ", "\t "]))
def test_generated_challenges_round_trip(challenges, spaces):
    header = (spaces + "," + spaces).join(render(scheme, body, spaces) for scheme, body in challenges)
    parsed = parse_www_authenticate(header)
    assert len(parsed) == len(challenges)
    for got, (scheme, body) in zip(parsed, challenges):
        assert got.scheme == scheme.lower()
        if isinstance(body, str):
            assert got.token68 == body and dict(got.params) == {}
        else:
            assert got.token68 is None
            assert dict(got.params) == {name.lower(): value for name, value in (body or {}).items()}


@settings(max_examples=200, deadline=None)
@given(st.lists(challenge_strategy, min_size=1, max_size=3), st.lists(challenge_strategy, min_size=1, max_size=3))
def test_several_header_lines_equal_one_joined_line(first, second):
    line1 = ", ".join(render(s, b, " ") for s, b in first)
    line2 = ", ".join(render(s, b, " ") for s, b in second)
    joined = parse_www_authenticate(f"{line1}, {line2}")
    assert joined == parse_www_authenticate(line1) + parse_www_authenticate(line2)
    assert bearer_challenge([line1, line2]) == bearer_challenge(f"{line1}, {line2}")


# --- bearer_challenge --------------------------------------------------------------------------


def test_bearer_challenge_reads_the_mcp_parameters():
    challenge = bearer_challenge(
        'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", '
        'scope="files:read  files:write files:read", error="insufficient_scope", error_description="need more"'
    )
    assert challenge == BearerChallenge(
        resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
        scopes=("files:read", "files:write"),
        error="insufficient_scope",
        error_description="need more",
    )


def test_bearer_challenge_defaults_and_blank_scope():
    assert bearer_challenge("Bearer") == BearerChallenge(None, None, None, None)
    assert bearer_challenge('Bearer scope=""').scopes == ()
    assert bearer_challenge('Bearer scope="a"').scopes == ("a",)
    # A token68 Bearer challenge is not RFC 6750, but it carries nothing we would use either.
    assert bearer_challenge("Bearer abc==") == BearerChallenge()


def test_bearer_and_dpop_challenges_are_read_alike_and_other_schemes_are_skipped():
    value = 'Basic realm="x", DPoP algs="ES256", Bearer scope="one", Bearer scope="two"'
    assert bearer_challenge(value).scopes == ("one",)  # the first that says something
    dpop = bearer_challenge('Basic realm="x", DPoP algs="ES256", resource_metadata="https://a/.well-known/x"')
    assert dpop.resource_metadata == "https://a/.well-known/x"  # RFC 9449 §7.1: the same parameters
    both = 'Bearer scope="one", DPoP resource_metadata="https://a/m", scope="two"'
    assert bearer_challenge(both).scopes == ("two",)  # naming the metadata wins
    assert bearer_challenge('Basic realm="x"') is None


def test_absent_header_gives_none_and_malformed_header_raises():
    assert bearer_challenge({}) is None
    assert bearer_challenge({"Content-Type": "text/plain"}) is None
    assert bearer_challenge([]) is None
    with pytest.raises(ChallengeError):
        bearer_challenge({"WWW-Authenticate": 'Bearer scope="x'})


@pytest.mark.parametrize(
    "headers",
    [
        {"WWW-Authenticate": 'Bearer scope="a"'},
        {"www-authenticate": 'Bearer scope="a"'},
        CaseInsensitiveDict({"Www-Authenticate": 'Bearer scope="a"'}),
        {"WWW-AUTHENTICATE": b'Bearer scope="a"'},
        {"www-authenticate": ['Basic realm="x"', 'Bearer scope="a"']},
        'Bearer scope="a"',
        b'Bearer scope="a"',
        ['Basic realm="x"', 'Bearer scope="a"'],
    ],
)
def test_bearer_challenge_accepts_headers_in_several_shapes(headers):
    assert bearer_challenge(headers).scopes == ("a",)


def test_differently_spelled_header_names_in_a_plain_dict_are_several_lines():
    headers = {"WWW-Authenticate": 'Basic realm="x"', "www-authenticate": 'Bearer scope="b"'}
    assert bearer_challenge(headers).scopes == ("b",)


def test_wrong_argument_type_is_a_type_error():
    with pytest.raises(TypeError):
        bearer_challenge(42)


def test_error_description_stays_out_of_repr():
    challenge = bearer_challenge('Bearer error="invalid_token", error_description="echo SECRET-TOKEN"')
    assert "SECRET-TOKEN" not in repr(challenge)
    assert challenge.error_description == "echo SECRET-TOKEN"


def test_from_a_real_response_with_several_header_lines():
    with DocServer() as docs:
        docs.route(
            "/mcp",
            401,
            b'{"error": "unauthorized"}',
            {
                "WWW-Authenticate": [
                    'Basic realm="legacy"',
                    'Bearer error="invalid_token", resource_metadata="https://mcp.example.com/prm", scope="mcp:tools"',
                ],
                "Content-Type": "application/json",
            },
        )
        response = requests.get(docs.url("/mcp"), timeout=5)
    assert response.status_code == 401
    challenge = bearer_challenge(response)
    assert challenge.resource_metadata == "https://mcp.example.com/prm"
    assert challenge.scopes == ("mcp:tools",)
    assert challenge.error == "invalid_token"
    assert [c.scheme for c in parse_www_authenticate(response.headers["WWW-Authenticate"])] == ["basic", "bearer"]


def test_a_real_response_without_the_header_gives_none():
    with DocServer() as docs:
        docs.route("/mcp", 401, b"no")
        response = requests.get(docs.url("/mcp"), timeout=5)
    assert bearer_challenge(response) is None
