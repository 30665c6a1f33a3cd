import sys

import pytest

from mcp_sync_auth._util.untrusted import MAX_JSON_DEPTH, json_object, loads_shallow


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
