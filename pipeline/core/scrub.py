"""Redact credentials that Canvas leaves inside request URLs.

Canvas puts the full request URL in ``metadata.url`` (Caliper: ``request_url``), and API
clients that pass their token as a query parameter leave it there: the documented
examples carry ``access_token=1~fHJK...`` (CATALOG.md section 7, quirk 9). A token in a
data lake is a live credential for anyone who can query the table, so every URL column
and the raw ``body``/``metadata`` JSON columns are scrubbed before they are written.

The parameter names are a small fixed list, not a heuristic:

* ``access_token``, ``refresh_token``: OAuth2 tokens (Canvas API, LTI).
* ``api_key``, ``client_secret``, ``password``: other secrets seen in query strings.
* ``verifier``: Canvas file-download capability (``/files/1/download?verifier=...``),
  which grants access to the file without a login.

A value is replaced by ``[REDACTED]`` wherever the name is followed by ``=`` or its
URL-encoded form ``%3D`` (query strings, fragments, encoded ``return_to`` URLs), any
case. The value ends at ``&``, ``#``, ``%26``, ``%23``, whitespace, a quote or a
backslash, so the replacement never breaks the JSON string it sits in. JSON keys of the
same names (``{"access_token": "..."}``) are *not* redacted: Canvas never sends them, and
the check would cost every event. Other personal data in URLs
(``sis_login_id:...`` in API paths) is *not* touched here: see pipeline/core/pii.py.
"""
from __future__ import annotations

import re

REDACTED = "[REDACTED]"
SECRET_PARAMS: tuple[str, ...] = (
    "access_token", "refresh_token", "api_key", "client_secret", "password", "verifier",
)

_NAMES = "|".join(SECRET_PARAMS)
_LONGEST = max(map(len, SECRET_PARAMS))
# No word boundary before the name on purpose: "code_verifier=" or "x_api_key=" are secrets too,
# and an encoded "%3Faccess_token%3D" has a hex digit right before the name. This regex is
# the definition; scrub_text finds the same matches faster (a test holds them equal).
_PARAM = re.compile(rf"(?i)((?:{_NAMES})(?:=|%3D))((?:(?!%26|%23)[^&#\s\"'\\<>])+)")
# Where a value ends: the same stop set as _PARAM's value class.
_VALUE_END = re.compile(r"""[&#\s"'\\<>]|%2[36]""")
# The last letters of the names, either case. Under the regex's IGNORECASE no other character
# matches these five (checked over all of Unicode), so a character before "=" that is not one
# of them rules a secret out, whatever the text.
_NAME_LAST_LETTERS = frozenset("nytdrNYTDR")


def scrub_text(text: str) -> str:
    """Redact the values of ``SECRET_PARAMS`` (``name=value`` / ``name%3Dvalue``) anywhere in ``text``.

    This runs on every body and metadata string, so it looks only where a secret can be: at
    each "=" (a memchr scan, far cheaper than a case-insensitive regex scan of the text) and,
    in text with a "%", each "%3D"/"%3d" (not each "%": encoded URLs hold
    dozens), checking the name that ends there. Most bodies hold neither and return at once.
    """
    starts = []
    for mark in ("=", "%3D", "%3d") if "%" in text else ("=",):
        pos = text.find(mark)
        while pos != -1:
            if pos and text[pos - 1] in _NAME_LAST_LETTERS:
                window = text[max(0, pos - _LONGEST):pos]
                if not window.isascii():
                    # str.lower() and the regex's case folding differ outside ASCII ("İ",
                    # "ſ"): the regex decides (rare: a non-ASCII letter right before "=").
                    return _PARAM.sub(_redact, text)
                if window.lower().endswith(SECRET_PARAMS):
                    starts.append(pos + len(mark))
            pos = text.find(mark, pos + 1)
    if not starts:
        return text
    return _redact_from(text, sorted(starts))


def _redact_from(text: str, starts: list[int]) -> str:
    """Replace each value beginning at ``starts`` (sorted) up to its end, as ``_PARAM`` would."""
    out, position = [], 0
    for value_start in starts:
        if value_start < position:
            continue  # inside a value already redacted (e.g. "api_key=access_token=x")
        end = _VALUE_END.search(text, value_start)
        value_end = end.start() if end else len(text)
        if value_end > value_start:  # an empty value is no match
            out.append(text[position:value_start])
            out.append(REDACTED)
            position = value_end
    if not out:
        return text
    out.append(text[position:])
    return "".join(out)


def _redact(match: re.Match[str]) -> str:
    return match.group(1) + REDACTED


def scrub_url(url: str | None) -> str | None:
    """``scrub_text`` for a URL column; None stays None."""
    if url is None:
        return None
    return scrub_text(url)
