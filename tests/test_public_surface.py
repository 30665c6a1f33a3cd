"""The public surface is chosen on purpose: pinned here, so that adding or dropping a name is a decision."""

import copy
import importlib.metadata
import inspect
import re
from pathlib import Path

import mcp_sync_auth
from mcp_sync_auth import errors

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = [
    "AuthorizationFailed",
    "AuthorizationHandler",
    "AuthorizationRequired",
    "AuthorizationResponseIssuerMismatch",
    "AuthorizationServerMetadata",
    "BearerChallenge",
    "ChainKey",
    "ChainRecord",
    "ChainStore",
    "ChallengeError",
    "ClientSettings",
    "ConfigurationError",
    "ConnectionSetupError",
    "CorruptTokenCache",
    "DeviceCode",
    "DeviceCodeExpired",
    "DeviceLoginDenied",
    "Discovery",
    "DiscoveryConnectionError",
    "DiscoveryError",
    "FileTokenStore",
    "IdentityProviderSettings",
    "InsecureTransportError",
    "InspectableStore",
    "InsufficientScope",
    "Inventory",
    "IssuerMismatch",
    "JSONRPCError",
    "KeychainUnavailable",
    "KeyringTokenStore",
    "LockTimeout",
    "LoginKey",
    "LoginOptions",
    "LogoutResult",
    "MCPAuth",
    "MCPAuthError",
    "MCPAuthKeywords",
    "MCPClient",
    "MCPConnectionError",
    "MCPProtocolError",
    "MemoryTokenStore",
    "MissingExtra",
    "PKCENotSupported",
    "ProtectedResourceMetadata",
    "RedisTokenStore",
    "RefreshChainRevoked",
    "RefreshInterrupted",
    "RegistrationConnectionError",
    "RegistrationFailed",
    "RegistrationKey",
    "RegistrationStore",
    "Reservation",
    "ResourceMismatch",
    "RevocationConnectionError",
    "RevocationFailed",
    "SealedRecordInvalid",
    "StateMismatch",
    "StoreFull",
    "StoreKeyMismatch",
    "Timeouts",
    "TokenEndpointConnectionError",
    "TokenEndpointError",
    "TokenSet",
    "TokenStore",
    "TokenStoreError",
    "ToolError",
    "Unreadable",
    "UnsealedRecord",
    "WorkloadTokenError",
    "__version__",
]


def test_all_is_pinned():
    assert sorted(mcp_sync_auth.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(mcp_sync_auth, name) is not None


def test_every_error_class_is_exported():
    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == errors.__name__
    }
    assert {name for name in classes if not name.startswith("_")} <= set(PUBLIC)


def test_every_error_the_readme_documents_is_importable():
    text = (ROOT / "README.md").read_text()
    table = text.split("## Errors and what to do", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            documented.update(re.findall(r"`([A-Z]\w+)`", line.split("|")[1]))
    assert len(documented) >= 15
    assert documented <= set(PUBLIC)


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def annotation_names(function):
    for annotation in getattr(function, "__annotations__", {}).values():
        yield from IDENTIFIER.findall(annotation if isinstance(annotation, str) else repr(annotation))


def public_callables():
    for name in PUBLIC:
        value = getattr(mcp_sync_auth, name)
        if not inspect.isclass(value):
            continue
        yield value, value  # its fields (dataclasses, TypedDicts)
        for attr, member in vars(value).items():
            if attr.startswith("_") and attr != "__init__":
                continue
            function = member.fget if isinstance(member, property) else member
            if isinstance(function, (staticmethod, classmethod)):
                function = function.__func__
            if callable(function):
                yield value, function


def test_every_type_in_a_public_signature_is_importable():
    missing = set()
    for owner, function in public_callables():
        namespace = {**vars(inspect.getmodule(owner)), **getattr(function, "__globals__", {})}
        for name in annotation_names(function):
            value = namespace.get(name)
            defined_here = getattr(value, "__module__", "").startswith("mcp_sync_auth")
            if inspect.isclass(value) and defined_here and getattr(mcp_sync_auth, name, None) is not value:
                missing.add(f"{owner.__name__}.{getattr(function, '__name__', '')}: {name}")
    assert missing == set()


def test_the_version_is_written_once():
    assert mcp_sync_auth.__version__ == importlib.metadata.version("mcp-sync-auth")
    assert "version = attr: mcp_sync_auth._version.__version__" in (ROOT / "setup.cfg").read_text()
    literal = re.compile(r"""__version__\s*=\s*["']""")
    writers = [p for p in (ROOT / "mcp_sync_auth").rglob("*.py") if literal.search(p.read_text())]
    assert [p.name for p in writers] == ["_version.py"]


def test_value_objects_are_frozen_and_copyable():
    client = mcp_sync_auth.ClientSettings(client_id="c", client_secret="hush-secret-value", scopes="a b")
    assert client.scopes == ("a", "b")
    assert "hush-secret-value" not in repr(client)
    assert copy.deepcopy(client) == client
    login = mcp_sync_auth.LoginOptions(interactive=False)
    assert copy.copy(login) == login
