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
_MAX_EQUALS_WALKED = 8
# No word boundary before the name on purpose: "code_verifier=" or "x_api_key=" are secrets too,
# and an encoded "%3Faccess_token%3D" has a hex digit right before the name.
_PARAM = re.compile(rf"(?i)((?:{_NAMES})(?:=|%3D))((?:(?!%26|%23)[^&#\s\"'\\<>])+)")


# Where a value ends: the same stop set as _PARAM's value class (searched in lowered text).
_VALUE_END = re.compile(r"""[&#\s"'\\<>]|%2[36]""")


def scrub_text(text: str) -> str:
    """Redact the values of ``SECRET_PARAMS`` (``name=value`` / ``name%3Dvalue``) anywhere in ``text``."""
    if not _may_hold_secret(text):
        return text
    return _scrub_found(text)


def _scrub_found(text: str) -> str:
    """The redaction itself. Names are found with plain ``find`` in ``text.lower()`` (a
    case-insensitive regex scan of the whole text cost ~100 us a 2 KB event); where lowering
    changes the length (a few non-ASCII letters), offsets would not line up and the regex
    does it. Same matches as ``_PARAM``."""
    low = text.lower()
    if len(low) != len(text):
        return _PARAM.sub(_redact, text)
    spans = []
    for name in SECRET_PARAMS:
        start = low.find(name)
        while start != -1:
            after = start + len(name)
            if low.startswith("=", after):
                value_start = after + 1
            elif low.startswith("%3d", after):
                value_start = after + 3
            else:
                start = low.find(name, after)
                continue
            end = _VALUE_END.search(low, value_start)
            value_end = end.start() if end else len(low)
            if value_end > value_start:
                spans.append((value_start, value_end))
            start = low.find(name, after)
    if not spans:
        return text
    spans.sort()
    out, position = [], 0
    for value_start, value_end in spans:
        if value_end <= position:
            continue  # inside a value already redacted
        if value_start >= position:
            out.append(text[position:value_start])
            out.append(REDACTED)
        position = value_end
    out.append(text[position:])
    return "".join(out)


def _may_hold_secret(text: str) -> bool:
    """Cheap pre-check for scrub_text, which runs on every body and metadata string.

    A case-insensitive regex scan costs ~50 us on 2 KB here, a substring search ~1 us. A
    secret needs "=" or "%3D" right after its name, so with a few "=" and no "%3" it is
    enough to look at the characters before each "=". Single-character ``in`` tests come
    first: they are memchr scans (~40 ns on 750 characters), where ``"%3" in text`` costs
    ~850 ns and ``text.count("=")`` ~600 ns, and most bodies hold neither "%" nor "=".
    """
    if "%" in text and "%3" in text:
        lowered = text.lower()
        return any(name in lowered for name in SECRET_PARAMS)
    if "=" not in text:
        return False
    count = text.count("=")
    if count > _MAX_EQUALS_WALKED:
        lowered = text.lower()
        return any(name in lowered for name in SECRET_PARAMS)
    pos = text.find("=")
    while pos != -1:
        if text[max(0, pos - _LONGEST):pos].lower().endswith(SECRET_PARAMS):
            return True
        pos = text.find("=", pos + 1)
    return False


def _redact(match: re.Match[str]) -> str:
    return match.group(1) + REDACTED


def scrub_url(url: str | None) -> str | None:
    """``scrub_text`` for a URL column; None stays None."""
    if url is None:
        return None
    return scrub_text(url)
