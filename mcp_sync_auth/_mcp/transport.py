"""The Streamable HTTP transport: one POST per JSON-RPC message, answered by JSON or an SSE stream.

It knows HTTP and the shape of JSON-RPC messages, nothing about sessions or versions: the client
hands it the headers to send and learns from :class:`SessionExpired` that a session is gone.

Every answer is untrusted: bodies are read through :mod:`mcp_sync_auth._util.untrusted` with a bound
(:data:`MAX_REPLY_BYTES` for a JSON reply, :data:`MAX_EVENT_CHARS` for one SSE event,
:data:`MAX_ERROR_BODY` for an HTTP error's body) and JSON is decoded with its depth guard, so a hostile
server gets an :class:`MCPProtocolError`, never a ``RecursionError`` or an exhausted memory.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Tuple

import requests
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict

from .._util.headers import bearer_token
from .._util.logs import cause_of, warn_limited
from .._util.redact import clean_server_text, redact_secrets
from .._util.sessions import SessionSource
from .._util.untrusted import json_object, json_value, read_at_most
from .._util.www_authenticate import parse_www_authenticate
from ..errors import ChallengeError, MCPConnectionError, MCPProtocolError
from .jsonrpc import METHOD_NOT_FOUND, JsonObject, RequestId, error_of, is_request, is_response
from .jsonrpc import response_error as rpc_response_error
from .jsonrpc import response_result as rpc_response_result
from .sse import EventTooLarge, ServerSentEvent, SSEParser

__all__ = [
    "ACCEPT",
    "METHOD_HEADER",
    "NAME_HEADER",
    "SESSION_HEADER",
    "VERSION_HEADER",
    "Reply",
    "SessionExpired",
    "StreamableHTTP",
    "header_value",
]

log = logging.getLogger(__name__)

ACCEPT = "application/json, text/event-stream"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
MAX_REPLY_BYTES = 32 * 1024 * 1024
"""A JSON reply's body. Tool results carry whole files and base64 images, so tens of MiB are real;
past this a server is more likely broken or hostile than generous."""
MAX_EVENT_CHARS = MAX_REPLY_BYTES
"""One SSE event (its data, or any one line). The reply arrives in one event, so this is the reply's
bound; the stream itself may last as long as a tool call streams progress, one bounded event at a time."""
MAX_ERROR_BODY = 64 * 1024
"""An HTTP error's body, read only for a JSON-RPC error object (a message and a code)."""
MAX_DRAIN_BYTES = 64 * 1024
"""What is read after the reply to keep the connection for reuse; a longer rest closes it instead."""
READ_SIZE = 64 * 1024
_BASE64_PREFIX, _BASE64_SUFFIX = "=?base64?", "?="


class SessionExpired(Exception):
    """HTTP 404 to a request that carried a session id: the server forgot the session."""


@dataclass(frozen=True)
class Reply:
    """The successful JSON-RPC response to one request, with the HTTP headers it came with.
    ``secrets`` (the bearer token sent, never shown) lets callers clean server text they quote."""

    message: JsonObject
    headers: CaseInsensitiveDict[str]
    secrets: Tuple[Optional[str], ...] = field(default=(), repr=False)


def header_value(value: str) -> str:
    """``value`` as an HTTP header value, in the 2026-07-28 Base64 sentinel form when it is not plain,
    visible ASCII without surrounding blanks (or when it would be mistaken for that form)."""
    plain = (
        value == value.strip()
        and all(ch == "\t" or " " <= ch <= "~" for ch in value)
        and not (value.startswith(_BASE64_PREFIX) and value.endswith(_BASE64_SUFFIX))
    )
    if plain:
        return value
    return _BASE64_PREFIX + base64.b64encode(value.encode("utf-8")).decode("ascii") + _BASE64_SUFFIX


def _bearer(response: requests.Response) -> Optional[str]:
    """The token the request carried, so that a server echoing it back cannot put it in a message."""
    return bearer_token(response.request.headers) if response.request is not None else None


def _media_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _pieces(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. ``read1`` (urllib3 2) returns what is there instead of waiting for a
    full buffer, which matters for a stream the server keeps open after the last event."""
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:
        yield from response.iter_content(chunk_size=None)
        return
    while True:
        piece = read1(READ_SIZE, decode_content=True)
        if not piece:
            return
        yield piece


class StreamableHTTP:
    """Sends JSON-RPC messages to one MCP endpoint with one ``requests`` session and auth."""

    def __init__(self, url: str, *, http: SessionSource, auth: Optional[AuthBase], timeout: float) -> None:
        self.url = url
        self._http = http
        self._auth = auth
        self._timeout = timeout

    # -- sending -----------------------------------------------------------------------------------

    def _post(self, message: JsonObject, headers: Mapping[str, str]) -> requests.Response:
        # Bytes, not json=: a bytes body can be sent again by the auth layer after a 401.
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        all_headers = {"Content-Type": "application/json", "Accept": ACCEPT, **headers}
        return self._http.request(
            "POST",
            self.url,
            failure=MCPConnectionError,
            data=body,
            headers=all_headers,
            auth=self._auth,
            timeout=self._timeout,
            stream=True,
        )

    def request(
        self,
        message: JsonObject,
        headers: Mapping[str, str],
        *,
        reply_headers: Optional[Mapping[str, str]] = None,
    ) -> Reply:
        """POST a request and return its successful response; an error response raises
        :class:`JSONRPCError`. ``reply_headers`` are used to answer requests the server sends in the
        stream (a ``ping``); None means the revision forbids those and they are ignored."""
        request_id: RequestId = message["id"]
        with self._post(message, headers) as response:
            self._check_status(response, headers)
            kind = _media_type(response)
            if response.status_code in (202, 204) or not kind:
                raise MCPProtocolError(
                    f"the MCP server sent no response to {message['method']!r} (HTTP {response.status_code})",
                    status_code=response.status_code,
                )
            if kind == "application/json":
                found = self._json_reply(response, request_id)
            elif kind == "text/event-stream":
                if reply_headers is not None and response.headers.get(SESSION_HEADER):
                    # Answers belong to the stream's session, even one this very response opens.
                    reply_headers = {SESSION_HEADER: response.headers[SESSION_HEADER], **reply_headers}
                found = self._stream_reply(response, request_id, reply_headers)
            else:
                raise MCPProtocolError(
                    f"the MCP server answered with unexpected content type {clean_server_text(kind)!r}",
                    status_code=response.status_code,
                )
            secrets = (_bearer(response),)
            if "error" in found:
                raise error_of(found, secrets=secrets, status_code=response.status_code)
            return Reply(found, response.headers, secrets)

    def notify(self, message: JsonObject, headers: Mapping[str, str]) -> None:
        """POST a notification (or a response to a server request); the server answers 202."""
        with self._post(message, headers) as response:
            self._check_status(response, headers)

    def delete_session(self, headers: Mapping[str, str]) -> int:
        """DELETE the session named in ``headers``; the status (405 means the server keeps it)."""
        with self._http.request(
            "DELETE",
            self.url,
            failure=MCPConnectionError,
            headers=dict(headers),
            auth=self._auth,
            timeout=self._timeout,
        ) as response:
            return response.status_code

    # -- status ------------------------------------------------------------------------------------

    def _check_status(self, response: requests.Response, headers: Mapping[str, str]) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        # No response= on these errors: its request carries the Authorization header.
        secrets = (_bearer(response),)
        if status in (401, 403):
            challenge = redact_secrets(response.headers.get("WWW-Authenticate", ""), secrets)
            hint = _challenge_hint(challenge)
            raise MCPProtocolError(
                f"the MCP server refused the request (HTTP {status}){hint}",
                status_code=status,
                www_authenticate=challenge or None,
            )
        if status == 404 and any(name.lower() == SESSION_HEADER.lower() for name in headers):
            raise SessionExpired()
        message = self._error_body(response)
        if message is not None:
            raise error_of(message, secrets=secrets, status_code=status)
        reason = clean_server_text(response.reason, secrets)
        raise MCPProtocolError(f"the MCP server answered HTTP {status} {reason}".rstrip(), status_code=status)

    @staticmethod
    def _error_body(response: requests.Response) -> Optional[JsonObject]:
        """A JSON-RPC error object in an HTTP error's body, if there is one (else the status speaks)."""
        if _media_type(response) != "application/json":
            return None
        message = json_object(read_at_most(response, MAX_ERROR_BODY))
        if message is not None and isinstance(message.get("error"), dict):
            return message
        return None

    # -- bodies ------------------------------------------------------------------------------------

    def _json_reply(self, response: requests.Response, request_id: RequestId) -> JsonObject:
        body = read_at_most(response, MAX_REPLY_BYTES)
        if body is None:
            raise MCPProtocolError(
                f"the MCP server's response is larger than {MAX_REPLY_BYTES} bytes", status_code=response.status_code
            )
        try:
            message = json_value(body)
        except ValueError:
            raise MCPProtocolError("the MCP server sent a response that is not JSON") from None
        found = self._match(message, request_id)
        if found is None:
            raise MCPProtocolError("the MCP server's JSON response does not answer our request")
        return found

    def _stream_reply(
        self,
        response: requests.Response,
        request_id: RequestId,
        reply_headers: Optional[Mapping[str, str]],
    ) -> JsonObject:
        parser = SSEParser(max_event_size=MAX_EVENT_CHARS)
        pieces = _pieces(response)
        try:
            for piece in pieces:
                for event in parser.feed(piece):
                    found = self._on_event(event, request_id, reply_headers)
                    if found is not None:
                        if response.headers.get("Content-Length"):
                            _drain(pieces)
                        return found
            # Lenient at the very end: a server that forgot the final blank line still gets its answer through.
            for event in parser.finish(dispatch_incomplete=True):
                found = self._on_event(event, request_id, reply_headers)
                if found is not None:
                    return found
        except EventTooLarge:
            raise MCPProtocolError(
                f"the MCP server sent an event larger than {MAX_EVENT_CHARS} characters",
                status_code=response.status_code,
            ) from None
        raise MCPProtocolError("the MCP server's event stream ended without a response to our request")

    def _on_event(
        self,
        event: ServerSentEvent,
        request_id: RequestId,
        reply_headers: Optional[Mapping[str, str]],
    ) -> Optional[JsonObject]:
        if event.event != "message" or not event.data.strip():
            return None  # other event types are not MCP's; empty data primes a reconnection
        try:
            message = json_value(event.data)
        except ValueError:
            raise MCPProtocolError("the MCP server sent an event that is not JSON") from None
        if not isinstance(message, dict):
            raise MCPProtocolError("the MCP server sent an event that is not a JSON-RPC message")
        found = self._match(message, request_id)
        if found is not None:
            return found
        if is_request(message):
            self._answer(message, reply_headers)
        else:
            log.debug("ignoring %s from the MCP server", message.get("method", "a message"))
        return None

    @staticmethod
    def _match(message: Any, request_id: RequestId) -> Optional[JsonObject]:
        """``message`` if it is the response to ``request_id`` (or an error about no request at all)."""
        if not isinstance(message, dict) or not is_response(message):
            return None
        answered = message.get("id")
        if answered == request_id and type(answered) is type(request_id):
            return message
        if answered is None and "error" in message:
            return message  # the server could not tell which request failed: it can only be ours
        return None

    def _answer(self, message: JsonObject, reply_headers: Optional[Mapping[str, str]]) -> None:
        """Answer a server-to-client request: ``ping`` gets an empty result, anything else
        "method not found". Failures are logged: they must not fail the caller's own request."""
        if reply_headers is None:
            log.debug("ignoring a server request this protocol revision does not allow")
            return
        method, server_id = message["method"], message["id"]
        if method == "ping":
            answer = rpc_response_result(server_id, {})
        else:
            answer = rpc_response_error(server_id, METHOD_NOT_FOUND, f"Method not found: {method}")
        try:
            self.notify(answer, reply_headers)
        except (requests.RequestException, SessionExpired) as exc:
            what = clean_server_text(method)
            warn_limited(
                log, (self.url, what), cause_of(exc), "could not answer the MCP server's %r request: %s", what, exc
            )


def _drain(pieces: Iterator[bytes]) -> None:
    """Read a short rest of the body so the connection can be reused; a long one is left unread,
    and closing the response then closes the connection."""
    drained = 0
    for piece in pieces:
        drained += len(piece)
        if drained > MAX_DRAIN_BYTES:
            return


def _challenge_hint(challenge: str) -> str:
    """The non-secret part of the Bearer challenge, for the message: ``error`` and ``scope``.
    A malformed header gives no hint; it is still kept whole on the error."""
    try:
        challenges = parse_www_authenticate(challenge)
    except ChallengeError:
        return ""
    bearer = next((found for found in challenges if found.scheme == "bearer"), None)
    if bearer is None:
        return ""
    hints = [f"{name}={bearer.params[name]}" for name in ("error", "scope") if name in bearer.params]
    return clean_server_text(": " + ", ".join(hints)) if hints else ""
