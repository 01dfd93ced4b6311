"""pipeline.core.jsontext: JSON read and written with every number's text intact."""
from __future__ import annotations

import pickle

import pytest

from pipeline.core import jsontext


@pytest.mark.parametrize("text", ["1.50", "1e5", "1E+5", "0.1000000000000000055511151231257827",
                                  "123456789012345678901234567890", "-18446744073709551617", "4.0", "99.5", "-0.0", "-0"])
def test_numbers_round_trip_with_their_text(text: str) -> None:
    value = jsontext.loads(f'{{"a":[{text}],"b":{text}}}')
    assert jsontext.dumps_sorted(value) == f'{{"a":[{text}],"b":{text}}}'.encode()


def test_a_decoded_value_survives_pickling() -> None:
    # Beam pickles elements at a fusion break: a kept number must come back as the same text.
    value = jsontext.loads(b'{"n":1.50,"big":123456789012345678901234567890,"f":2.5}')
    again = pickle.loads(pickle.dumps(value))
    assert jsontext.dumps_sorted(again) == jsontext.dumps_sorted(value) == (
        b'{"big":123456789012345678901234567890,"f":2.5,"n":1.50}')


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a":NaN}', b'"\\ud800"', b"\xef\xbb\xbf{}", b"1e400", b"[" * 5000])
def test_invalid_json_is_refused(raw: bytes) -> None:
    with pytest.raises(jsontext.InvalidJson):
        jsontext.loads(raw)


def test_a_non_json_value_still_fails_to_serialize() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps_sorted({"a": object()})
    with pytest.raises(TypeError):
        jsontext.dumps_sorted({1: 2**70})


def test_pii_rewriting_keeps_exact_numbers() -> None:
    # --pii=hash|drop parses and rewrites the JSON columns: other numbers must not be rounded.
    from pipeline.core.pii import apply_pii
    from schemas.events import ROW_COLUMNS

    body = '{"n":123456789012345678901234567890,"score":1.50,"sis_id":123456789012345678901234567890}'
    row = {**dict.fromkeys(ROW_COLUMNS), "body": body, "metadata": "{}"}
    dropped = apply_pii(row, "drop")
    assert dropped["body"] == '{"n":123456789012345678901234567890,"score":1.50,"sis_id":null}'
    hashed = apply_pii(row, "hash", "salt")
    assert hashed["body"].startswith('{"n":123456789012345678901234567890,"score":1.50,"sis_id":"')
    assert apply_pii({**row, "body": body.replace("123456789012345678901234567890}", '"123456789012345678901234567890"}')},
                     "hash", "salt")["body"] == hashed["body"]  # a number hashes as its exact text


def test_pii_reaches_the_delivery_extra_column() -> None:
    from pipeline.core.pii import apply_pii
    from schemas.events import ROW_COLUMNS

    row = {**dict.fromkeys(ROW_COLUMNS), "body": "{}", "metadata": "{}",
           "delivery_extra": '{"subscription":{"id":"s","user_login":"jdoe"}}'}
    assert apply_pii(row, "drop")["delivery_extra"] == '{"subscription":{"id":"s","user_login":null}}'
    assert apply_pii({**row, "delivery_extra": None}, "drop")["delivery_extra"] is None
