"""How the edge reads JSON (shared/edge.py): `parse_json` gives what the standard library's json.loads
gives (orjson is only its speed), and `json_too_deep` counts the brackets a parser descends into, the
ones inside strings left out."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.edge import json_too_deep, parse_json

# Values and bodies orjson alone reads differently from the standard library, or refuses.
DIVERGENT_BODIES = [
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"n": 1e400, "m": -1.7976931348623157e309}',
    b'{"big": 18446744073709551616, "small": -9223372036854775809}',
    b'{"huge": ' + str(2**200).encode() + b"}",
    b'{"fits": 18446744073709551615, "also": -9223372036854775808, "float": 12345678901234567890.5}',
    b'{"digits": "12345678901234567890123", "n": 1}',
    b'{"lone": "\\ud800", "pair": "\\ud83d\\ude00"}',
    b'{"raw surrogate": "\xed\xa0\x80"}',
    b'\xef\xbb\xbf{"bom": 1}',
    '{"utf16": "é"}'.encode("utf-16"),
    '{"utf32": 1}'.encode("utf-32-le"),
    b'{"a": 1, "a": 2}',
    b"[1, 2,]",
    b'{"a": "\x01"}',
    b'{"a": "\xff"}',
    b"{'a': 1}",
    b'{"a": 1} x',
    b"\x0c{}",
    b"[" * 1100 + b"]" * 1100,
    b'"' + b"9" * 5000 + b'"',
    b"9" * 5000,
]


def _outcome(read: Any, body: bytes) -> tuple[str, str]:
    """What reading `body` gives: the value (NaN compared as text), or the kind of error the edge turns into a 400."""
    try:
        return "value", repr(read(body))
    except RecursionError:
        return "error", "RecursionError"
    except ValueError:
        return "error", "ValueError"


@pytest.mark.parametrize("body", DIVERGENT_BODIES)
def test_parse_json_reads_what_json_loads_reads(body):
    assert _outcome(parse_json, body) == _outcome(json.loads, body)


def test_an_integer_beyond_64_bits_stays_an_integer():
    value = parse_json(b'{"id": ' + str(2**70).encode() + b', "neg": -' + str(2**64).encode() + b"}")
    assert value == {"id": 2**70, "neg": -(2**64)} and isinstance(value["id"], int)


def test_non_finite_numbers_are_read_as_before():
    value = parse_json(b"[NaN, Infinity, -Infinity, 1e999]")
    assert math.isnan(value[0]) and value[1:] == [math.inf, -math.inf, math.inf]


json_text = st.text(st.sampled_from('ab"\\[]{}/\u00e9\u4e2d\n\t\ud800\U0001f600\x00'), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | json_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_any_json_document_parses_as_json_loads_and_its_depth_is_its_nesting(value, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _outcome(parse_json, body) == _outcome(json.loads, body)
    for limit in range(6):
        assert json_too_deep(body, limit) == (_depth(value) > limit), (body, limit)


def _parser_depth(body: bytes) -> int:
    """The deepest a parser reading `body` from the left goes, one byte at a time: a quote starts or
    ends a string, a backslash in a string escapes the next byte, brackets in strings are text."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


# Not JSON: brackets in any order and number, strings holding brackets, quotes and escapes, the last
# one perhaps unterminated.
string_content = st.lists(st.sampled_from(["a", "[", "]", "{", "}", '\\"', "\\\\", "\\n", "\\u005b"]), max_size=6)
tokens = st.lists(
    st.sampled_from(["[", "]", "{", "}", ",", ":", "1", " "])
    | string_content.map(lambda parts: '"' + "".join(parts) + '"'),
    max_size=40,
)


@settings(max_examples=1000, deadline=None)
@given(tokens, string_content, st.booleans())
def test_the_depth_of_broken_json_is_how_deep_a_parser_would_go(parts, tail, unterminated):
    body = ("".join(parts) + ('"' + "".join(tail) if unterminated else "")).encode()
    for limit in range(6):
        assert json_too_deep(body, limit) == (_parser_depth(body) > limit), (body, limit)


def test_a_large_body_of_many_objects_is_not_too_deep_and_a_deep_one_in_it_is():
    files = [{"filename": f"{i}.txt", "tag": f"[{i}]{{"} for i in range(20_000)]
    assert not json_too_deep(json.dumps({"files": files, "tag_type": [["a"], {"b": []}]}).encode())
    deep = json.dumps({"files": files, "x": json.loads("[" * 64 + "]" * 64)}).encode()
    assert json_too_deep(deep) and not json_too_deep(deep, 65)
