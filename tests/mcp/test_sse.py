"""The SSE parser against the HTML standard's event stream interpretation, piece by piece."""

import pytest

from mcp_sync_auth._mcp.sse import EventTooLarge, ServerSentEvent, SSEParser, parse_events


def bytewise(data):
    return [data[i : i + 1] for i in range(len(data))]


def test_one_event_with_defaults():
    assert parse_events(b"data: hello\n\n") == [ServerSentEvent("hello")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(newline):
    stream = newline.join([b"event: message", b"id: 7", b"data: {}", b"", b""])
    assert parse_events(stream) == [ServerSentEvent("{}", "message", "7")]


def test_mixed_line_endings_in_one_stream():
    events = parse_events(b"data: a\r\n\ndata: b\r\rdata: c\n\r\n")
    assert [event.data for event in events] == ["a", "b", "c"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_pieces_of_one_byte_give_the_same_events(newline):
    stream = newline.join([b": comment", b"id: 1", b"data: x", b"data: y", b"", b"data: z", b"", b""])
    assert parse_events(bytewise(stream)) == parse_events(stream)
    assert [event.data for event in parse_events(bytewise(stream))] == ["x\ny", "z"]


def test_crlf_split_between_pieces_is_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [ServerSentEvent("a")]  # CR LF, then a lone CR: a blank line
    assert parser.feed(b"\ndata: b\r\n\r\n") == [ServerSentEvent("b")]


def test_multi_line_data_is_joined_with_lf():
    events = parse_events(b'data: {"a":\ndata:  1}\ndata\n\n')
    assert events == [ServerSentEvent('{"a":\n 1}\n')]  # only the first space after the colon goes


def test_comments_are_skipped_and_dispatch_nothing():
    assert parse_events(b": keep-alive\n\n:\n\n: x\ndata: y\n: z\n\n") == [ServerSentEvent("y")]


def test_no_trailing_blank_line_discards_the_event_unless_asked():
    assert parse_events(b"data: first\n\ndata: last\n") == [ServerSentEvent("first")]
    lenient = parse_events(b"data: first\n\ndata: last", dispatch_incomplete=True)
    assert lenient == [ServerSentEvent("first"), ServerSentEvent("last")]
    assert parse_events(b"data: first\n\ndata: last\n", dispatch_incomplete=True)[-1].data == "last"


def test_leading_bom_is_dropped_once():
    assert parse_events("\ufeffdata: a\n\n".encode()) == [ServerSentEvent("a")]
    assert parse_events(bytewise("\ufeffdata: a\n\n".encode())) == [ServerSentEvent("a")]
    # A second BOM is part of the first line's field name, so that line is an unknown field.
    assert parse_events("\ufeff\ufeffdata: a\n\ndata: b\n\n".encode()) == [ServerSentEvent("b")]


def test_event_type_and_unknown_fields():
    events = parse_events(b"event: ping\ndata: 1\nfoo: bar\n\ndata: 2\n\n")
    assert [(event.event, event.data) for event in events] == [("ping", "1"), ("message", "2")]


def test_ids_persist_and_count_even_without_data():
    parser = SSEParser()
    events = parser.feed(b"id: 1\ndata:\n\nid: 2\n\ndata: x\n\nid\ndata: y\n\n")
    # "data:" with nothing after it is an event with empty data; a bare id is not dispatched.
    assert [(event.id, event.data) for event in events] == [("1", ""), ("2", "x"), ("", "y")]
    assert parser.last_event_id == ""


def test_id_with_nul_is_ignored_and_late_id_counts_only_at_dispatch():
    parser = SSEParser()
    assert parser.feed(b"id: 5\ndata: a\n\nid: x\0y\ndata: b\n\n")[1].id == "5"
    parser.feed(b"id: 9\n")
    assert parser.last_event_id == "5"  # the event with id 9 was never completed
    assert parser.finish() == []
    assert parser.last_event_id == "5"


def test_retry_takes_digits_only():
    parser = SSEParser()
    parser.feed(b"retry: 1500\n\nretry: soon\n\nretry: -1\n\n")
    assert parser.retry == 1500
    assert parser.feed(b"data: a\n\n")[0].retry == 1500


def test_invalid_utf8_is_replaced_not_fatal():
    assert parse_events(b"data: \xff\xfe ok\n\n") == [ServerSentEvent("\ufffd\ufffd ok")]


def test_multibyte_character_split_across_pieces():
    stream = "data: héllo €\n\n".encode()
    assert parse_events(bytewise(stream)) == [ServerSentEvent("héllo €")]


def test_text_input_and_colon_in_value():
    assert parse_events("data: a: b\n\n") == [ServerSentEvent("a: b")]


def test_field_name_is_case_sensitive():
    assert parse_events(b"Data: a\n\nDATA: b\n\n") == []


def test_max_event_size_bounds_each_event_not_the_stream():
    parser = SSEParser(max_event_size=12)
    events = []
    for _ in range(100):  # many small events: the stream may be as long as it likes
        events += parser.feed(b"data: 012345\n\n")  # a line of 12 characters
    assert len(events) == 100
    # Data lines count with the LF that joins them: 6 + 5 characters.
    assert parser.feed(b"data: 01234\ndata: 0123\n\n") == [ServerSentEvent("01234\n0123")]


@pytest.mark.parametrize(
    "stream",
    [
        b"data: 0123456789abc\n\n",  # one data line
        b"data: 012345\ndata: 012345\n\n",  # data lines together: 7 + 7 characters
        b": a comment longer than twelve\n\n",  # any one line
        b"data: 0123456789ab",  # a line that never ends
    ],
)
def test_max_event_size_refuses_a_larger_event(stream):
    parser = SSEParser(max_event_size=12)
    with pytest.raises(EventTooLarge, match="larger than 12 characters"):
        for piece in bytewise(stream):
            parser.feed(piece)
