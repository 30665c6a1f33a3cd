import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sync_auth._util.untrusted import MAX_JSON_DEPTH, json_object, json_value, loads_shallow


def test_deep_nesting_is_refused_before_the_decoder_recurses():
    hostile = "[" * 100_000 + "]" * 100_000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # the decoder would need 100,000 levels; the guard needs none
    try:
        with pytest.raises(ValueError, match="nested deeper"):
            loads_shallow(hostile)
    finally:
        sys.setrecursionlimit(limit)
    assert json_object(b'{"a": ' * 1000 + b"1" + b"}" * 1000) is None


def test_brackets_inside_strings_do_not_count_and_real_documents_parse():
    text = '{"a": "' + "[" * 500 + '\\"{", "b": [[1]]}'
    assert loads_shallow(text)["b"] == [[1]]
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_shallow(nested) is not None


def reference_depth(text):
    """The guard's meaning, one character at a time: the deepest bracket outside string literals."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n', max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\k', max_size=4), inner),
    max_leaves=40,
)


@given(json_values, st.integers(min_value=0, max_value=80))
@settings(max_examples=300, deadline=None)
def test_the_guard_counts_exactly_the_structural_brackets(value, extra):
    text = "[" * extra + json.dumps(value) + "]" * extra
    if reference_depth(text) > MAX_JSON_DEPTH:
        with pytest.raises(ValueError, match="nested deeper"):
            loads_shallow(text)
    else:
        assert loads_shallow(text) == json.loads(text)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"{", b"[" * 100 + b"]" * 100, b'"unterminated [[[', b"", b"{}}"],
)
def test_json_value_raises_only_value_error(raw):
    with pytest.raises(ValueError):
        json_value(raw)
    assert json_object(raw) is None


def test_json_value_takes_any_json_and_text_or_bytes():
    assert json_value(b'[{"jsonrpc": "2.0"}]') == [{"jsonrpc": "2.0"}]
    assert json_value('"a"') == "a"
    assert json_value("null") is None
    assert json_object(b"[1]") is None and json_object(b'{"a": 1}') == {"a": 1}
