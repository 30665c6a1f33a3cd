"""The contenders: how each library is set up the way its users set it up, and one echo call through it.

Everything here except :data:`CONTENDERS` and :func:`available` runs inside worker processes. The optional
libraries (Authlib, the mcp SDK) are imported in their own workers only, so the quick check of our own
contender needs nothing but mcp_sync_auth's own dependencies.

Recipes (one per library, the usual one):

- ``mcp_sync_auth``: one ``MCPAuth`` over a ``FileTokenStore`` per process, shared by its threads
  through one ``requests.Session``.
- ``requests-oauthlib``: one ``OAuth2Session`` per worker thread, built from the shared token file when
  the worker starts, ``auto_refresh_url`` set, and a ``token_updater`` that writes the file back.
- ``authlib``: the same with Authlib's ``requests_client.OAuth2Session`` and its ``update_token`` hook
  (plus a compliance hook that adds the ``resource`` parameter the strict server requires).
- ``mcp-sdk``: the official SDK's ``OAuthClientProvider`` on an ``httpx2.AsyncClient``, one per process,
  with a file-backed ``TokenStorage``; worker "threads" are asyncio tasks on one event loop.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import requests
import requests_oauthlib
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from mcp_sync_auth import FileTokenStore, MCPAuth

from .clock import SharedClock, patch_library_clocks

ECHO_TEXT = "bench"
RPC_BODY: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": ECHO_TEXT}},
}
RPC_HEADERS = {"Accept": "application/json, text/event-stream"}
PROTOCOL_VERSION = "2025-11-25"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never used: no contender logs in during a run


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    ours: bool
    driver: str  # "threads" or "asyncio"
    needs: tuple[str, ...]  # importable modules it needs
    note: str = ""


CONTENDERS: tuple[Contender, ...] = (
    Contender("mcp_sync_auth", "mcp_sync_auth (MCPAuth + FileTokenStore)", True, "threads", ("mcp_sync_auth",)),
    Contender(
        "requests-oauthlib",
        "requests-oauthlib OAuth2Session (auto_refresh_url + token_updater)",
        False,
        "threads",
        ("requests_oauthlib",),
    ),
    Contender("authlib", "Authlib requests OAuth2Session (update_token)", False, "threads", ("authlib",)),
    Contender(
        "mcp-sdk",
        "mcp SDK OAuthClientProvider (file TokenStorage, expiry primed)",
        False,
        "asyncio",
        ("mcp", "httpx2"),
        "the provider is primed with the stored token's expiry (see bench/README.md)",
    ),
    Contender(
        "mcp-sdk-unprimed",
        "mcp SDK OAuthClientProvider (file TokenStorage, as shipped)",
        False,
        "asyncio",
        ("mcp", "httpx2"),
        "a token loaded from storage has no known expiry: the SDK never refreshes it",
    ),
)
BY_NAME = {contender.name: contender for contender in CONTENDERS}


def available(contender: Contender) -> Optional[str]:
    """None when the contender can run here, else why not."""
    for module in contender.needs:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install '.[bench]')"
    return None


# --- shared token file for the naive recipes --------------------------------------------------------


def write_token_file(path: str, token: dict[str, Any]) -> None:
    """Atomic replace, so a concurrent reader never sees half a file (kinder than most recipes)."""
    directory = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(token, handle)
    os.replace(temp, path)


def read_token_file(path: str) -> dict[str, Any]:
    with open(path) as handle:
        token: dict[str, Any] = json.load(handle)
        return token


def initial_token_document(token_response: dict[str, Any], now: float) -> dict[str, Any]:
    """The token as a recipe stores it after login: the response plus an integer ``expires_at``."""
    document = dict(token_response)
    document["expires_at"] = int(now) + int(token_response["expires_in"])
    return document


# --- the call -----------------------------------------------------------------------------------------


def outcome_of(status: int, payload: Any) -> str:
    if status != 200:
        return f"http {status}"
    try:
        text = payload["result"]["content"][0]["text"]
    except (KeyError, IndexError, TypeError):
        return "wrong answer"
    return "ok" if text == ECHO_TEXT else "wrong answer"


def requests_echo(session: Any, url: str, auth: Any = None, extra_headers: Optional[dict[str, str]] = None) -> str:
    headers = dict(RPC_HEADERS, **(extra_headers or {}))
    response = session.post(url, json=RPC_BODY, headers=headers, auth=auth, timeout=60)
    try:
        payload = response.json() if response.status_code == 200 else None
    except ValueError:
        return "not json"
    return outcome_of(response.status_code, payload)


def guarded(call: Callable[[], str]) -> Callable[[], str]:
    """Any exception becomes an outcome named after its type: a failed call, counted, never fatal."""

    def run() -> str:
        try:
            return call()
        except Exception as exc:
            return type(exc).__name__

    return run


# --- worker side: thread-driven contenders ------------------------------------------------------------


class ThreadedClient:
    """One per worker process; ``caller()`` is called once per worker thread, when the thread starts."""

    def caller(self) -> Callable[[], str]:
        raise NotImplementedError

    def last_auth_wait(self) -> float:
        """Seconds the calling thread's last call spent getting its token (NaN when not measured)."""
        return math.nan

    def close(self) -> None:
        return None


def make_mcp_auth(
    url: str, store_dir: Optional[str], client_id: str, token_endpoint: str, **options: Any
) -> MCPAuth:
    """``MCPAuth`` configured by hand, never interactive: a benchmark must not open a browser to log in
    (``interactive`` exists in newer versions only). ``store_dir`` None: the store ``$MCP_SYNC_AUTH_STORE``
    names (a fleet host's Redis); ``store=`` in ``options``: that store."""
    if "interactive" in inspect.signature(MCPAuth).parameters:
        options["interactive"] = False
    if "store" not in options:
        options["store"] = FileTokenStore(store_dir) if store_dir is not None else None
    return MCPAuth(url, client_id=client_id, token_endpoint=token_endpoint, **options)


def _sized_session(pool: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 10))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class TimedAuth(AuthBase):
    """Wraps an auth object and records, per thread, how long its ``__call__`` took: for a token that
    must be refreshed before the request is sent, that is the whole stall the expiry adds to the call."""

    def __init__(self, inner: AuthBase) -> None:
        self.inner = inner
        self.local = threading.local()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        began = time.perf_counter()
        try:
            return self.inner(request)
        finally:
            self.local.last = time.perf_counter() - began


class OursClient(ThreadedClient):
    def __init__(self, env: dict[str, Any], clock: Optional[SharedClock]) -> None:
        options: dict[str, Any] = {}
        if clock is not None:
            options["clock"] = clock
        self.url = env["mcp_url"]
        if env.get("store") == "environment":  # a fleet host: MCPAuth's own choice, $MCP_SYNC_AUTH_STORE
            auth = make_mcp_auth(self.url, None, env["client_id"], env["token_endpoint"], **options)
        else:
            auth = make_mcp_auth(self.url, env["store_dir"], env["client_id"], env["token_endpoint"], **options)
        self.timed = TimedAuth(auth) if env.get("time_auth") else None
        self.auth: AuthBase = self.timed if self.timed is not None else auth
        self.session = _sized_session(env["threads"])

    def last_auth_wait(self) -> float:
        if self.timed is None:
            return math.nan
        return float(getattr(self.timed.local, "last", math.nan))

    def caller(self) -> Callable[[], str]:
        return guarded(lambda: requests_echo(self.session, self.url, self.auth))

    def close(self) -> None:
        self.session.close()


class RequestsOAuthlibClient(ThreadedClient):
    def __init__(self, env: dict[str, Any], clock: Optional[SharedClock]) -> None:
        # The transport check of requests-oauthlib refuses http:// even on loopback; this switch is
        # process-wide, which is why it is set here, in this contender's own worker processes only.
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        if clock is not None:
            patch_library_clocks(("oauthlib", "requests_oauthlib"), clock)
        self.env = env

    def caller(self) -> Callable[[], str]:
        env = self.env
        path = env["token_file"]
        session = requests_oauthlib.OAuth2Session(
            env["client_id"],
            token=read_token_file(path),  # each worker loads the file when it starts
            auto_refresh_url=env["token_endpoint"],
            auto_refresh_kwargs={"client_id": env["client_id"], "resource": env["mcp_url"]},
            token_updater=lambda token: write_token_file(path, token),
        )
        return guarded(lambda: requests_echo(session, env["mcp_url"]))


class AuthlibClient(ThreadedClient):
    def __init__(self, env: dict[str, Any], clock: Optional[SharedClock]) -> None:
        # Optional dependency (the bench extra): imported in this contender's workers only.
        from authlib.integrations.requests_client import OAuth2Session  # noqa: PLC0415

        if clock is not None:
            patch_library_clocks(("authlib",), clock)
        self.env = env
        self._session_class = OAuth2Session

    def caller(self) -> Callable[[], str]:
        env = self.env
        path = env["token_file"]

        def update_token(token: dict[str, Any], refresh_token: Optional[str] = None, access_token: Any = None) -> None:
            write_token_file(path, dict(token))

        def add_resource(url: str, headers: dict[str, str], body: str) -> tuple[str, dict[str, str], str]:
            extra = urlencode({"resource": env["mcp_url"]})
            return url, headers, f"{body}&{extra}" if body else extra

        session = self._session_class(
            env["client_id"],
            token=read_token_file(path),
            token_endpoint=env["token_endpoint"],
            token_endpoint_auth_method="none",
            update_token=update_token,
        )
        session.register_compliance_hook("refresh_token_request", add_resource)
        return guarded(lambda: requests_echo(session, env["mcp_url"]))


THREADED: dict[str, Callable[[dict[str, Any], Optional[SharedClock]], ThreadedClient]] = {
    "mcp_sync_auth": OursClient,
    "requests-oauthlib": RequestsOAuthlibClient,
    "authlib": AuthlibClient,
}


# --- worker side: the mcp SDK (asyncio) -----------------------------------------------------------------


class AsyncClient:
    """One per worker process, living on the process's event loop."""

    async def call(self) -> str:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class McpSdkClient(AsyncClient):
    def __init__(self, env: dict[str, Any], clock: Optional[SharedClock], *, primed: bool) -> None:
        self.env = env
        self.clock = clock
        self.primed = primed

    async def open(self) -> None:
        # Optional dependencies (the bench extra): imported in this contender's workers only.
        import httpx2  # noqa: PLC0415
        from mcp.client.auth import OAuthClientProvider  # noqa: PLC0415
        from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken  # noqa: PLC0415

        # The SDK logs a traceback for every failed call once the chain is dead; the bench counts them.
        logging.getLogger("mcp").setLevel(logging.CRITICAL + 1)
        if self.clock is not None:
            patch_library_clocks(("mcp.client.auth", "mcp.shared.auth_utils"), self.clock)
        env = self.env
        path = env["token_file"]
        now = self.clock if self.clock is not None else time.time

        class FileTokenStorage:
            """The usual file-backed ``TokenStorage``: read the JSON file, write it back on refresh."""

            def __init__(self) -> None:
                self.client_info = OAuthClientInformationFull(
                    client_id=env["client_id"],
                    redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]  # pydantic parses the URL
                    token_endpoint_auth_method="none",
                )

            async def get_tokens(self) -> Any:
                document = read_token_file(path)
                return OAuthToken(**{k: v for k, v in document.items() if k in OAuthToken.model_fields})

            async def set_tokens(self, tokens: Any) -> None:
                document = tokens.model_dump(exclude_none=True)
                if tokens.expires_in is not None:
                    document["expires_at"] = int(now()) + int(tokens.expires_in)
                write_token_file(path, document)

            async def get_client_info(self) -> Any:
                return self.client_info

            async def set_client_info(self, client_info: Any) -> None:
                self.client_info = client_info

        self.provider = OAuthClientProvider(
            env["mcp_url"],
            OAuthClientMetadata(redirect_uris=[REDIRECT_URI]),  # type: ignore[list-item]  # parsed by pydantic
            FileTokenStorage(),
        )
        if self.primed:
            # OAuthClientProvider learns a token's expiry only from a token response it received itself;
            # one loaded from storage counts as valid forever (never refreshed, sent until a 401 starts a
            # full browser login). Priming gives it the stored expiry, as if this process had logged in.
            await self.provider._initialize()
            self.provider.context.token_expiry_time = float(read_token_file(path)["expires_at"])
        self.http = httpx2.AsyncClient(auth=self.provider, timeout=60)
        self.headers = dict(RPC_HEADERS, **{"MCP-Protocol-Version": PROTOCOL_VERSION})

    async def call(self) -> str:
        try:
            response = await self.http.post(self.env["mcp_url"], json=RPC_BODY, headers=self.headers)
            payload = response.json() if response.status_code == 200 else None
            return outcome_of(response.status_code, payload)
        except Exception as exc:
            return type(exc).__name__

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.aclose()


async def open_async_client(name: str, env: dict[str, Any], clock: Optional[SharedClock]) -> AsyncClient:
    if name not in ("mcp-sdk", "mcp-sdk-unprimed"):
        raise KeyError(name)
    client = McpSdkClient(env, clock, primed=name == "mcp-sdk")
    await client.open()
    return client
