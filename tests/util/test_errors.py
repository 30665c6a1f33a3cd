"""Every exception class of mcp_sync_auth.errors survives copy, deepcopy and pickle with all its
attributes: waiters of one refresh get copies of the leader's error, and errors cross processes."""

import copy
import inspect
import pickle

import pytest

from mcp_sync_auth import errors

CLASSES = sorted(
    (
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__
    ),
    key=lambda cls: cls.__name__,
)

# A value, unlike any default, for every parameter any __init__ in the module takes.
SAMPLES = {
    "message": "the message",
    "code": -32001,
    "data": {"detail": ["nested", 1]},
    "result": {"content": [{"type": "text", "text": "boom"}], "isError": True},
    "login_hint": "run: mcp-sync-auth login https://mcp.example/mcp",
    "status_code": 503,
    "error_code": "temporarily_unavailable",
    "transient": True,
    "ambiguous": True,
    "quarantined_to": "/tmp/tokens.json.corrupt",
    "extra": "redis",
    "record_key_id": "ab12cd34ef56ab78",
    "store_key_id": "0011223344556677",
    "scopes": ("mcp:read", "mcp:write"),
    "url": "https://as.example/.well-known/oauth-authorization-server",
    "expected": "https://as.example",
    "actual": "https://evil.example",
    "suggestion": "https://as.example/mcp",
    "www_authenticate": 'Bearer error="invalid_token"',
    "kind": "certificate",
    "host": "as.example:8443",
    "proxy": "proxy.corp:3128",
    "revoked": ("refresh_token",),
}


def parameters(cls):
    """Every named parameter of the __init__s the class runs (each forwards **kwargs upwards)."""
    found = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ == errors.__name__ and "__init__" in vars(klass):
            for name, param in inspect.signature(klass.__init__).parameters.items():
                if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    found[name] = param
    return found


def build(cls):
    own = inspect.signature(cls.__init__).parameters.values()
    positional = [p.name for p in own if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]
    missing = set(parameters(cls)) - set(SAMPLES)
    assert not missing, f"add a sample value for {sorted(missing)} of {cls.__name__}"
    keywords = {name: SAMPLES[name] for name in parameters(cls) if name not in positional}
    return cls(*(SAMPLES[name] for name in positional), **keywords)


ROUND_TRIPS = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    **{f"pickle-{protocol}": (lambda e, p=protocol: pickle.loads(pickle.dumps(e, p))) for protocol in (2, 5)},
}


def test_the_module_has_the_classes_we_expect_to_cover():
    names = {cls.__name__ for cls in CLASSES}
    assert {"MCPAuthError", "JSONRPCError", "ToolError", "MCPProtocolError", "TokenEndpointError"} <= names
    assert len(CLASSES) >= 20


@pytest.mark.parametrize("round_trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_round_trip_keeps_type_message_and_every_attribute(cls, round_trip):
    original = build(cls)
    original.seen_by = ["worker-1"]  # an attribute set after construction is state too
    again = round_trip(original)
    assert again is not original
    assert type(again) is cls
    assert (str(again), repr(again), again.args) == (str(original), repr(original), original.args)
    assert vars(again) == vars(original)
    for name in parameters(cls):
        assert getattr(again, name) == SAMPLES[name]
    if round_trip is copy.deepcopy:
        mutable = [name for name in parameters(cls) if isinstance(SAMPLES[name], (dict, list))]
        assert all(getattr(again, name) is not getattr(original, name) for name in mutable)
