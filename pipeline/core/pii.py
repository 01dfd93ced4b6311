"""Personal data handling for ``--pii keep|hash|drop``.

Four columns identify a person directly: ``user_login``, ``user_sis_id``, ``client_ip``
and ``user_agent`` (``PII_COLUMNS``). The modes:

* ``keep``: unchanged (a copy of the row).
* ``hash``: HMAC-SHA256 with an operator secret (``salt``), hex. Equal inputs still join
  (the same login hashes the same everywhere), but without the salt the hashes cannot be
  reversed by hashing guesses; a plain unsalted hash of a login or an IPv4 address can.
* ``drop``: None.

The same values also sit inside the raw ``metadata`` and ``body`` JSON columns (the
Canvas metadata; Caliper ``actor.extensions`` and event ``extensions``; user bodies), so
for hash/drop every JSON key in ``PII_JSON_KEYS`` is rewritten the same way, at any depth,
in those columns (and ``delivery_extra``): the column and the JSON agree and nothing is left
behind under those keys.
``PII_JSON_KEYS`` adds to the column names the keys that hold the same kind of data in
bodies: ``student_sis_id`` (grade_change), ``sis_id`` (Caliper assignee extensions),
``user_name`` (enrollment events) and ``email`` (course_completed/course_progress user).

What remains, by design, in every mode: ids (``user_id`` etc.: needed to join; they are
opaque numbers), person names under generic keys (``name``/``short_name`` of
user_created/user_updated, ``display_name``), free text (discussion/submission/
conversation bodies, which may mention anyone), and identifiers inside URL paths
(``/users/sis_login_id:jdoe``, ``as_user_id=sis_login_id%3A...``). Credentials in URLs
are always redacted by scrub.py, independently of this setting.
"""
from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from pipeline.core import jsontext

if TYPE_CHECKING:
    from schemas.events import Row

PII_COLUMNS: tuple[str, ...] = ("user_login", "user_sis_id", "client_ip", "user_agent")
PII_MODES: tuple[str, ...] = ("keep", "hash", "drop")
PII_JSON_KEYS: frozenset[str] = frozenset(PII_COLUMNS) | {"student_sis_id", "sis_id", "user_name", "email"}
_JSON_COLUMNS = ("metadata", "body", "delivery_extra")


@lru_cache(maxsize=8)
def _keyed(salt: str) -> "hmac.HMAC":
    return hmac.new(salt.encode("utf-8"), digestmod=hashlib.sha256)


def pii_hash(value: str, salt: str) -> str:
    """HMAC-SHA256(salt, value) as hex."""
    mac = _keyed(salt).copy()
    mac.update(value.encode("utf-8"))
    return mac.hexdigest()


def _rewrite(node: Any, replace: Callable[[Any], Any]) -> Any:
    if type(node) is dict:
        return {
            k: (replace(v) if k in PII_JSON_KEYS and not isinstance(v, (dict, list)) else _rewrite(v, replace))
            for k, v in node.items()
        }
    if type(node) is list:
        return [_rewrite(v, replace) for v in node]
    return node


def _rewrite_json(text: str | None, replace: Callable[[Any], Any]) -> str | None:
    if text is None:
        return None
    # jsontext, not orjson: the rewritten column keeps every other number's exact text
    return jsontext.dumps_sorted(_rewrite(jsontext.loads(text), replace)).decode()


def pii_setting_problem(mode: str, salt: str | None, *, mode_name: str = "pii", salt_name: str = "a salt") -> str | None:
    """What is wrong with a PII setting, in the caller's words (option or argument names), or None.

    The one rule: the mode is one of ``PII_MODES``, and ``hash`` has a non-empty salt (an
    operator secret: unsalted hashes of logins and IPs are reversible).
    """
    if mode not in PII_MODES:
        return f"{mode_name} must be one of {', '.join(PII_MODES)}, got {mode!r}"
    if mode == "hash" and not salt:
        return (f"{mode_name}=hash needs {salt_name} (a secret; unsalted hashes of logins and IPs are "
                "reversible)")
    return None


def apply_pii(row: Row | dict[str, Any], mode: str, salt: str | None = None) -> Row | dict[str, Any]:
    """A copy of ``row`` (a ``schemas.events.Row`` or a dict of its columns, returned as it came)
    with PII kept, HMAC-hashed or dropped (see module docstring).

    Raises ValueError for an unknown mode, or for ``hash`` without a non-empty salt.
    """
    problem = pii_setting_problem(mode, salt)
    if problem:
        raise ValueError(problem)
    columns = row._asdict() if isinstance(row, tuple) else row
    if mode == "keep":
        return row if isinstance(row, tuple) else dict(row)
    if mode == "hash":
        key = salt or ""  # never empty here: checked above

        def replace(value: Any) -> Any:
            if value is None:
                return None
            text = value if type(value) is str else jsontext.dumps_sorted(value).decode()
            return pii_hash(text, key)
    else:

        def replace(value: Any) -> Any:
            return None

    changes = {column: replace(columns.get(column)) for column in PII_COLUMNS}
    for column in _JSON_COLUMNS:
        changes[column] = _rewrite_json(columns.get(column), replace)
    return row._replace(**changes) if isinstance(row, tuple) else {**row, **changes}
