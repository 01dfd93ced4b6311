"""Read and write JSON without altering a number.

orjson, fast as it is, reads an integer beyond 64 bits as a float
(``123456789012345678901234567890`` came back as ``1.2345678901234568e+29``) and writes every
float in its shortest form (``1.50`` -> ``1.5``, ``1e5`` -> ``100000.0``). A delivery's numbers
must reach the ``body``/``metadata`` columns as they were sent, so:

* ``loads`` parses with msgspec, which reads integers of any size exactly and hands the text
  of every float literal to a hook. A float whose text orjson writes back unchanged (``4.0``,
  ``99.5``: what producers normally send) stays a float; any other (``1.50``, ``1e5``, a
  mantissa beyond double precision) becomes an ``orjson.Fragment`` of its exact text, which
  orjson writes verbatim. Only float literals pay for the hook; integers and strings cost
  what they cost before. The integer ``-0`` (msgspec reads it as 0) is found by a pattern and
  read again by the stdlib parser, which keeps it.
* ``dumps_sorted`` is orjson with sorted keys; an integer beyond 64 bits (orjson refuses it)
  is written from its exact decimal text, on a slow path taken only when one is present.

``number_text`` gives the exact text of a number kept as a Fragment, for id columns.
"""
from __future__ import annotations

import copyreg
import json
import re
from typing import Any

import msgspec
import orjson

Fragment = orjson.Fragment


def _reduce_fragment(fragment: Fragment) -> tuple[Any, tuple[bytes]]:
    return Fragment, (orjson.dumps(fragment),)


# A decoded event crosses Beam stages and may be pickled there (a fusion break, a retry);
# orjson.Fragment has no pickle support of its own, so it is rebuilt from its text.
copyreg.pickle(Fragment, _reduce_fragment)

_ORJSON_INTS = range(-(2**63), 2**64)
_INFINITIES = (float("inf"), float("-inf"))


class InvalidJson(ValueError):
    """The bytes are not one RFC 8259 JSON value (the message says where, never what)."""


def _float(text: str) -> Any:
    value = float(text)
    if orjson.dumps(value) == text.encode():  # "4.0", "99.5": kept as a float
        return value
    if value in _INFINITIES:  # 1e400: refused, as orjson and the JWT reference refuse it
        raise ValueError("a number is infinite when read as a double")
    return Fragment(text.encode())


_DECODER = msgspec.json.Decoder(float_hook=_float)


# msgspec reads the integer -0 as 0 (no hook sees integers). A -0 that ends a value sends the
# (already validated) document to the stdlib parser, whose integer hook sees the text; the
# pattern also matches inside strings ("a-0,b"), which only costs that slower parse.
_NEGATIVE_ZERO = re.compile(rb"-0(?=\s*(?:[,\]}]|$))")


def _int(text: str) -> Any:
    return _MINUS_ZERO if text == "-0" else int(text)


_MINUS_ZERO = Fragment(b"-0")


def loads(data: bytes | str) -> Any:
    """Parse JSON; numbers keep their exact text (see the module docstring). Raises InvalidJson."""
    try:
        value = _DECODER.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise InvalidJson(str(exc)) from None
    except RecursionError:
        raise InvalidJson("JSON is nested too deeply") from None
    raw = data if type(data) is bytes else data.encode() if type(data) is str else bytes(data)
    if _NEGATIVE_ZERO.search(raw) is None:
        return value
    try:
        return json.loads(raw, parse_int=_int, parse_float=_float)
    except RecursionError:
        raise InvalidJson("JSON is nested too deeply") from None


def _exact(value: Any) -> Any:
    """``value`` with every integer orjson cannot write replaced by a Fragment of its digits."""
    kind = type(value)
    if kind is dict:
        return {k: _exact(v) for k, v in value.items()}
    if kind is list:
        return [_exact(v) for v in value]
    if kind is int and value not in _ORJSON_INTS:
        return Fragment(str(value).encode())
    return value


def dumps_sorted(value: Any) -> bytes:
    """Sorted-key compact JSON; integers beyond 64 bits are written exactly. TypeError for non-JSON values."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        exact = _exact(value)
        if exact == value:  # nothing was too big: a genuinely non-JSON value
            raise
        return orjson.dumps(exact, option=orjson.OPT_SORT_KEYS)


def number_text(value: Fragment) -> str:
    """The exact text of a number kept as a Fragment."""
    return orjson.dumps(value).decode()
