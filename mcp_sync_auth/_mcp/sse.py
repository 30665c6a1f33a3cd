"""An incremental Server-Sent Events parser (HTML Living Standard, "event stream interpretation").

Bytes go in as they arrive from the network, in pieces of any size; whole events come out. Lines end
in CRLF, LF or a lone CR (a CR at the end of one piece may be followed by the LF in the next); a
leading byte order mark is dropped; lines starting with ``:`` are comments; ``data`` lines are joined
with LF; an event with no data is not dispatched, but its ``id`` still counts.

A stream may go on for as long as the server likes, but with ``max_event_size`` no one event (its data,
or any line, finished or not) may grow past that many characters: :class:`EventTooLarge` is raised.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Union

__all__ = ["EventTooLarge", "SSEParser", "ServerSentEvent", "parse_events"]

_BOM = "\ufeff"
_LINE_END = re.compile(r"\r\n|\r|\n")  # not str.splitlines: it also splits on VT, FF, NEL, U+2028...


class EventTooLarge(ValueError):
    """An event (or a line) of the stream grew past the parser's ``max_event_size``."""


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event. ``id`` is the stream's last event id at dispatch time (may be None)."""

    data: str
    event: str = "message"
    id: Optional[str] = None
    retry: Optional[int] = None


class SSEParser:
    """Feed bytes with :meth:`feed`, collect events; call :meth:`finish` at the end of the stream.
    ``max_event_size`` (characters; None for no bound) caps what one event may hold in memory."""

    def __init__(self, *, max_event_size: Optional[int] = None) -> None:
        self._max_event_size = max_event_size
        self._data_size = 0  # characters in self._data, with the LFs that will join them
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False  # the BOM is only skipped at the very start of the stream
        self._after_cr = False  # the last piece ended in CR: a leading LF in the next one is its pair
        self._data: List[str] = []
        self._event_type = ""
        self._id_buffer: Optional[str] = None
        self._last_id: Optional[str] = None
        self._retry: Optional[int] = None

    @property
    def last_event_id(self) -> Optional[str]:
        return self._last_id

    @property
    def retry(self) -> Optional[int]:
        """The latest reconnection time (milliseconds) the server asked for, if any."""
        return self._retry

    def feed(self, chunk: Union[bytes, str]) -> List[ServerSentEvent]:
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        return self._consume(text)

    def finish(self, *, dispatch_incomplete: bool = False) -> List[ServerSentEvent]:
        """End of stream. The standard discards an event not closed by a blank line; with
        ``dispatch_incomplete`` it is dispatched instead (for servers that omit the last blank line)."""
        events = self._consume(self._decoder.decode(b"", final=True))
        if dispatch_incomplete:
            if self._buffer:
                self._line(self._buffer)
            event = self._dispatch()
            if event is not None:
                events.append(event)
        self._buffer, self._data, self._event_type, self._data_size = "", [], "", 0
        return events

    def _consume(self, text: str) -> List[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        if self._after_cr:
            self._after_cr = False
            if text.startswith("\n"):
                text = text[1:]  # the LF of a CRLF split between two pieces
        buffer = self._buffer + text
        events: List[ServerSentEvent] = []
        start = 0
        for end in _LINE_END.finditer(buffer):
            line = buffer[start : end.start()]
            start = end.end()
            if line:
                self._line(line)
                continue
            event = self._dispatch()
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        self._check_size(len(self._buffer))  # a line that does not end (yet)
        self._after_cr = start == len(buffer) and buffer.endswith("\r")
        return events

    def _line(self, line: str) -> None:
        self._check_size(len(line))
        if line.startswith(":"):
            return  # comment (also used as keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            self._check_size(self._data_size)
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Any other field name is ignored, as the standard says.

    def _check_size(self, size: int) -> None:
        """Held to the bound on their own: each line, and the event's data (so at most twice it is held)."""
        limit = self._max_event_size
        if limit is not None and size > limit:
            raise EventTooLarge(f"an event of the stream is larger than {limit} characters")

    def _dispatch(self) -> Optional[ServerSentEvent]:
        # The id counts at every blank line, even for an event without data (a "priming" event).
        self._last_id = self._id_buffer
        data, event_type = self._data, self._event_type
        self._data, self._event_type, self._data_size = [], "", 0
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event_type or "message", self._last_id, self._retry)


def parse_events(
    stream: Union[bytes, str, Iterable[bytes]], *, dispatch_incomplete: bool = False
) -> List[ServerSentEvent]:
    """Every event of a complete stream (bytes, text, or an iterable of byte pieces)."""
    parser = SSEParser()
    pieces: Iterable[Union[bytes, str]] = [stream] if isinstance(stream, (bytes, str)) else stream
    events: List[ServerSentEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.finish(dispatch_incomplete=dispatch_incomplete))
    return events
