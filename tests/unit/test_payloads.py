"""The payload rules, on both sides of the wire: JSON values, within the size and depth limits."""

from __future__ import annotations

import json

import pytest
from durable.common.errors import InvalidArgument, PayloadTooLarge
from durable.common.payloads import (
    MAX_PAYLOAD_DEPTH,
    Checked,
    check_payload,
    decode_payload,
    encode_payload,
    plain,
)


def test_round_trip_keeps_the_text_it_checked() -> None:
    text = encode_payload({"a": [1, 2.5, "é"], "b": None})
    checked = check_payload(text)
    assert checked == Checked(text, {"a": [1, 2.5, "é"], "b": None})
    assert decode_payload(text) == checked.value
    assert encode_payload(checked) == text  # passed on, not encoded again
    assert plain(checked) == checked.value and plain({"x": 1}) == {"x": 1}


def test_empty_text_is_the_empty_object() -> None:
    assert check_payload("") == Checked("{}", {})
    assert encode_payload(None, allow_none=True) == "{}"


@pytest.mark.parametrize(("text", "value"), [("[1]", [1]), ("1", 1), ('"s"', "s"), ("null", None)])
def test_any_json_value(text: str, value: object) -> None:
    assert decode_payload(text, field="input") == value


@pytest.mark.parametrize("text", ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', "{", '{"a": 1} x'])
def test_not_json_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument, match="result_json is not valid JSON"):
        decode_payload(text, field="result_json")


def test_nan_cannot_be_encoded_either() -> None:
    with pytest.raises(InvalidArgument, match="not JSON-serialisable"):
        encode_payload({"x": float("nan")})


def test_size_is_counted_in_utf8_bytes() -> None:
    ascii_text = json.dumps({"s": "x" * 92})  # 101 bytes
    wide_text = json.dumps({"s": "é" * 92}, ensure_ascii=False)  # 193 bytes, 101 characters
    assert check_payload(ascii_text, limit=101).value["s"] == "x" * 92
    with pytest.raises(PayloadTooLarge, match="193 bytes, over the limit of 101"):
        check_payload(wide_text, limit=101)
    with pytest.raises(PayloadTooLarge, match="193 bytes"):
        encode_payload(Checked(wide_text, {}), limit=101)
    with pytest.raises(PayloadTooLarge):
        encode_payload({"s": "é" * 92}, limit=101)


def test_bytes_are_decoded_as_utf8() -> None:
    assert decode_payload('{"s": "é"}'.encode()) == {"s": "é"}
    with pytest.raises(InvalidArgument, match="not valid UTF-8"):
        decode_payload(b'{"s": "\xff"}')


def test_depth_limit_both_ways() -> None:
    deep: dict = {}
    node = deep
    for _ in range(MAX_PAYLOAD_DEPTH):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(InvalidArgument, match="nests deeper"):
        encode_payload(deep)
    with pytest.raises(InvalidArgument, match="nests deeper"):
        decode_payload(json.dumps(deep))
    with pytest.raises(InvalidArgument):  # far too deep for the parser itself
        decode_payload('{"a":' * 100_000 + "1" + "}" * 100_000)
