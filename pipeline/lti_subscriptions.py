"""`canvas-events lti-subscriptions`: Canvas's "Webhooks Subscriptions for Plagiarism Platform" API.

The API (``Lti::SubscriptionsApiController``; Canvas docs "Webhooks Subscriptions for
Plagiarism Platform"): ``POST /api/lti/subscriptions`` (create), ``GET /api/lti/subscriptions``
(list, paged), ``GET|PUT|DELETE /api/lti/subscriptions/:id`` (show, update, delete), with a JWT
access token in ``Authorization: Bearer``. A subscription is sent as
``{"subscription": {"ContextType", "ContextId", "EventTypes", "Format", "TransportType",
"TransportMetadata": {"Url": ...}}}``: context type ``assignment``, ``account`` or ``course``;
format ``live-event`` or ``caliper``; transport ``https`` (a URL Canvas posts each event to, the
receiver's) or ``sqs`` (a queue URL, see ``canvas-events sqs-relay``). Canvas forwards the
subscription service's answer (status and JSON body) as is. ``list`` returns at most 100
subscriptions per answer; when more remain the answer carries an ``EndKey`` header whose value
goes back as the ``StartKey`` header of the next request.

The access token ("JWT access tokens" in Canvas's docs, section 2.0) comes from the tool's LTI 2
authorization endpoint (the ``oauth2_access_token_url`` of the tool's registration,
``/api/lti/accounts/:account_id/authorize``): POST ``grant_type=
urn:ietf:params:oauth:grant-type:jwt-bearer`` and an ``assertion`` JWT with ``sub`` the tool
proxy GUID, ``aud`` that URL, ``iat``/``exp``/``jti``, signed HS256 with the tool proxy's shared
secret (HS256 is what Canvas specifies for this assertion; it is signing, never verifying).

Layout: pure functions build each request (``HttpRequest``) and read each answer; ``send`` is the
only HTTP, over urllib, refusing redirects (the token must not follow them elsewhere) and
plain http:// except to loopback. Neither the token, the assertion nor the secret is ever
printed, logged or put in an error message: errors name the operation, the status and Canvas's
own message.
"""
from __future__ import annotations

import ipaddress
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import orjson

SUBSCRIPTIONS_PATH = "/api/lti/subscriptions"
CONTEXT_TYPES = ("assignment", "account", "course")
FORMATS = ("live-event", "caliper")
TRANSPORTS = ("https", "sqs")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_PAGES = 10_000  # a server that keeps answering the same EndKey must not loop forever
_MAX_MESSAGE_CHARS = 300


class LtiError(Exception):
    """One clear line for the user; never holds a token, an assertion or a secret."""


class CanvasApiError(LtiError):
    """Canvas answered with a non-2xx status."""

    def __init__(self, operation: str, status: int, message: str):
        self.operation = operation
        self.status = status
        super().__init__(f"{operation}: Canvas answered {status}: {message}")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    operation: str = ""

    def __repr__(self) -> str:  # the Authorization header stays out of reprs and tracebacks
        return f"HttpRequest({self.method} {self.url})"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def base_url(canvas_url: str) -> str:
    """The Canvas root URL without a trailing slash; https://, or http:// to loopback only."""
    parts = urllib.parse.urlsplit(canvas_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise LtiError(f"--canvas_url must be an https:// URL, not {canvas_url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise LtiError("--canvas_url must be https:// (a token sent over plain http could be read on the way)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise LtiError("--canvas_url must be a plain URL (no user, query or fragment)")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def subscription_body(
    *,
    context_type: str,
    context_id: str,
    event_types: Sequence[str],
    format: str,
    transport_type: str,
    transport_url: str,
) -> dict[str, Any]:
    """The ``subscription`` object of create/update, checked against the documented values."""
    if context_type not in CONTEXT_TYPES:
        raise LtiError(f"context type must be one of {', '.join(CONTEXT_TYPES)}, not {context_type!r}")
    if not str(context_id).strip():
        raise LtiError("a context id is required")
    events = [e.strip() for e in event_types if e and e.strip()]
    if not events:
        raise LtiError("at least one event type is required")
    if format not in FORMATS:
        raise LtiError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if transport_type not in TRANSPORTS:
        raise LtiError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport_type!r}")
    if urllib.parse.urlsplit(transport_url or "").scheme != "https":
        what = "the receiver's URL" if transport_type == "https" else "the SQS queue URL"
        raise LtiError(f"the transport URL ({what}) must be an https:// URL, not {transport_url!r}")
    return {
        "ContextType": context_type,
        "ContextId": str(context_id).strip(),
        "EventTypes": events,
        "Format": format,
        "TransportType": transport_type,
        "TransportMetadata": {"Url": transport_url},
    }


def _auth_headers(token: str, *, json_body: bool = False) -> dict[str, str]:
    if not token or any(c in token for c in "\r\n "):
        raise LtiError("the access token is empty or not a single line")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


def _subscription_url(canvas_url: str, subscription_id: str | None = None) -> str:
    url = base_url(canvas_url) + SUBSCRIPTIONS_PATH
    if subscription_id is None:
        return url
    if not subscription_id.strip():
        raise LtiError("a subscription id is required")
    return f"{url}/{urllib.parse.quote(subscription_id.strip(), safe='')}"


def create_request(canvas_url: str, token: str, subscription: Mapping[str, Any]) -> HttpRequest:
    return HttpRequest("POST", _subscription_url(canvas_url), _auth_headers(token, json_body=True),
                       orjson.dumps({"subscription": subscription}), "create")


def update_request(canvas_url: str, token: str, subscription_id: str, subscription: Mapping[str, Any]) -> HttpRequest:
    return HttpRequest("PUT", _subscription_url(canvas_url, subscription_id), _auth_headers(token, json_body=True),
                       orjson.dumps({"subscription": subscription}), "update")


def show_request(canvas_url: str, token: str, subscription_id: str) -> HttpRequest:
    return HttpRequest("GET", _subscription_url(canvas_url, subscription_id), _auth_headers(token), None, "show")


def delete_request(canvas_url: str, token: str, subscription_id: str) -> HttpRequest:
    return HttpRequest("DELETE", _subscription_url(canvas_url, subscription_id), _auth_headers(token), None, "delete")


def list_request(canvas_url: str, token: str, start_key: str | None = None) -> HttpRequest:
    headers = _auth_headers(token)
    if start_key is not None:
        headers["StartKey"] = start_key
    return HttpRequest("GET", _subscription_url(canvas_url), headers, None, "list")


def error_message(body: bytes) -> str:
    """Canvas's own words from an error body (``{"error": ...}``, ``{"errors": [...]}``, text)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return " ".join(text.split())[:_MAX_MESSAGE_CHARS] or "(empty body)"
    messages: list[str] = []
    if isinstance(data, dict):
        for key in ("error", "message", "error_description"):
            if isinstance(data.get(key), str):
                messages.append(data[key])
        errors = data.get("errors")
        if isinstance(errors, list):
            messages += [e["message"] if isinstance(e, dict) and "message" in e else str(e) for e in errors]
        elif isinstance(errors, dict):
            messages += [f"{k}: {v}" for k, v in errors.items()]
        if not messages and not data:
            return "(no details)"
    text = "; ".join(str(m) for m in messages) if messages else orjson.dumps(data).decode()
    return " ".join(text.split())[:_MAX_MESSAGE_CHARS]


def parse_json(operation: str, response: HttpResponse) -> Any:
    """The JSON body of a 2xx answer; CanvasApiError for any other status."""
    if not 200 <= response.status < 300:
        raise CanvasApiError(operation, response.status, error_message(response.body))
    if not response.body.strip():
        return {}
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError:
        raise LtiError(f"{operation}: Canvas answered {response.status} with a body that is not JSON") from None


def page_items(data: Any) -> list[Any]:
    """The subscriptions in one list answer (a JSON array; tolerate an object wrapping one)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("subscriptions", "Items", "items"):
            if isinstance(data.get(key), list):
                return data[key]
    raise LtiError("list: Canvas answered with neither a list of subscriptions nor an object holding one")


def next_start_key(response: HttpResponse) -> str | None:
    """The ``EndKey`` header to send back as ``StartKey``, or None on the last page."""
    value = response.headers.get("endkey")
    return value if value and value.strip() else None


# --- the access token -------------------------------------------------------------------------


def token_assertion(tool_proxy_guid: str, authorize_url: str, shared_secret: str, *, now: float,
                    jti: str | None = None) -> str:
    """The JWT assertion of Canvas's JWT-bearer grant for LTI 2 APIs (HS256, shared secret)."""
    import jwt

    if not tool_proxy_guid.strip() or not shared_secret:
        raise LtiError("the tool proxy GUID and its shared secret are both required to obtain a token")
    claims = {
        "sub": tool_proxy_guid.strip(),
        "aud": authorize_url,
        "iat": int(now),
        "exp": int(now) + ASSERTION_LIFETIME_SECONDS,
        "jti": jti or str(uuid.uuid4()),
    }
    return jwt.encode(claims, shared_secret, algorithm="HS256")


def token_request(authorize_url: str, assertion: str) -> HttpRequest:
    base_url(authorize_url)  # same https/loopback rule as the API itself
    body = urllib.parse.urlencode({"grant_type": JWT_BEARER_GRANT, "assertion": assertion}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    return HttpRequest("POST", authorize_url, headers, body, "token")


def parse_token(response: HttpResponse) -> str:
    data = parse_json("token", response)
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise LtiError("token: Canvas's answer holds no access_token")
    return token


# --- HTTP at the edge -------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise LtiError(f"Canvas redirected ({code}) to {urllib.parse.urlsplit(newurl).netloc or newurl!r}; "
                       "not following it with the token: check --canvas_url")


_OPENER = urllib.request.build_opener(_NoRedirect())


def send(request: HttpRequest, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> HttpResponse:
    """Send one request; any HTTP status comes back as an HttpResponse, a network failure as LtiError."""
    req = urllib.request.Request(request.url, data=request.body, headers=dict(request.headers), method=request.method)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResponse(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        host = urllib.parse.urlsplit(request.url).netloc
        raise LtiError(f"{request.operation}: cannot reach {host}: {type(reason).__name__}: {reason}") from None


Sender = Callable[[HttpRequest], HttpResponse]


def list_all(canvas_url: str, token: str, *, sender: Sender = send) -> Iterator[Any]:
    """Every subscription, following ``EndKey`` into ``StartKey`` until the last page."""
    start_key: str | None = None
    seen_keys: set[str] = set()
    for _ in range(MAX_PAGES):
        response = sender(list_request(canvas_url, token, start_key))
        yield from page_items(parse_json("list", response))
        start_key = next_start_key(response)
        if start_key is None:
            return
        if start_key in seen_keys:
            raise LtiError("list: Canvas answered the same EndKey twice; stopping")
        seen_keys.add(start_key)
    raise LtiError(f"list: more than {MAX_PAGES} pages; stopping")


def obtain_token(authorize_url: str, tool_proxy_guid: str, shared_secret: str, *, sender: Sender = send,
                 clock: Callable[[], float] = time.time) -> str:
    assertion = token_assertion(tool_proxy_guid, authorize_url, shared_secret, now=clock())
    return parse_token(sender(token_request(authorize_url, assertion)))


# --- the command line (canvas-events lti-subscriptions ...) ------------------------------------

TOKEN_ENV = "CANVAS_LTI_ACCESS_TOKEN"
SECRET_ENV = "CANVAS_LTI_SHARED_SECRET"
RECEIVER_URL_ENV = "RECEIVER_URL"
PROG = "canvas-events lti-subscriptions"


def add_parser(subparsers: Any) -> None:
    """The ``lti-subscriptions`` subcommand and its actions, on canvas-events' subparsers."""
    import argparse

    parser = subparsers.add_parser(
        "lti-subscriptions", help="manage Canvas webhook subscriptions (LTI plagiarism platform API)",
        description="Create, list, show, update and delete webhook subscriptions with Canvas's "
                    "'Webhooks Subscriptions for Plagiarism Platform' API. The access token comes from "
                    f"--access_token_file, else ${TOKEN_ENV}, else it is obtained with the tool proxy's "
                    f"credentials (--tool_proxy_guid, --authorize_url, and --shared_secret_file or ${SECRET_ENV}). "
                    "Tokens and secrets are never printed. Exit 0: done; 1: Canvas refused or could not be "
                    "reached; 2: usage.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--canvas_url", required=True, help="Canvas root URL, e.g. https://school.instructure.com")
    common.add_argument("--access_token_file", default=None,
                        help=f"file holding a JWT access token (default: ${TOKEN_ENV}, else obtain one)")
    common.add_argument("--tool_proxy_guid", default=None, help="tool proxy GUID, to obtain a token")
    common.add_argument("--authorize_url", default=None,
                        help="the tool's oauth2_access_token_url (…/api/lti/accounts/ID/authorize), to obtain a token")
    common.add_argument("--shared_secret_file", default=None,
                        help=f"file holding the tool proxy's shared secret (default: ${SECRET_ENV})")
    common.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT_SECONDS,
                        help=f"seconds per HTTP request (default: {REQUEST_TIMEOUT_SECONDS:g})")

    fields = argparse.ArgumentParser(add_help=False)
    fields.add_argument("--context_type", required=True, choices=CONTEXT_TYPES, help="what the subscription covers")
    fields.add_argument("--context_id", required=True, help="id of that assignment, account or course")
    fields.add_argument("--event_types", required=True, action="append", metavar="TYPE[,TYPE...]",
                        help="event types, comma-separated or repeated (e.g. submission_created)")
    fields.add_argument("--format", default="live-event", choices=FORMATS, help="event format (default: live-event)")
    fields.add_argument("--transport", default="https", choices=TRANSPORTS,
                        help="https: Canvas posts to the receiver; sqs: into an SQS queue (default: https)")
    fields.add_argument("--transport_url", default=None,
                        help=f"https: the receiver's URL (default: ${RECEIVER_URL_ENV}); sqs: the queue URL (required)")

    actions = parser.add_subparsers(dest="lti_action", metavar="{create,list,show,update,delete}", required=True)
    actions.add_parser("create", parents=[common, fields], help="create a subscription")
    actions.add_parser("list", parents=[common], help="list every subscription of the tool (all pages)")
    for name in ("show", "update", "delete"):
        action = actions.add_parser(name, parents=[common, fields] if name == "update" else [common],
                                    help=f"{name} one subscription")
        action.add_argument("subscription_id", help="the subscription's Id")


class UsageError(LtiError):
    """Wrong or missing arguments (exit 2)."""


def _read_secret_file(path: str, what: str) -> str:
    try:
        value = open(path, encoding="utf-8").read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not value:
        raise UsageError(f"the {what} file {path} is empty")
    return value


def resolve_token(args: Any, environ: Mapping[str, str], sender: Sender, secrets: list[str]) -> str:
    """The access token; every secret value met on the way is added to ``secrets`` (for redaction)."""
    if args.access_token_file:
        secrets.append(_read_secret_file(args.access_token_file, "access token"))
        return secrets[-1]
    if environ.get(TOKEN_ENV, "").strip():
        return environ[TOKEN_ENV].strip()
    if not (args.tool_proxy_guid and args.authorize_url):
        raise UsageError(f"no access token: give --access_token_file, set ${TOKEN_ENV}, or give --tool_proxy_guid "
                         f"and --authorize_url with the shared secret (--shared_secret_file or ${SECRET_ENV})")
    if args.shared_secret_file:
        secret = _read_secret_file(args.shared_secret_file, "shared secret")
    elif environ.get(SECRET_ENV, "").strip():
        secret = environ[SECRET_ENV].strip()
    else:
        raise UsageError(f"obtaining a token needs the shared secret: --shared_secret_file or ${SECRET_ENV}")
    secrets.append(secret)
    secrets.append(obtain_token(args.authorize_url, args.tool_proxy_guid, secret, sender=sender))
    return secrets[-1]


def _subscription_from(args: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    transport_url = args.transport_url
    if not transport_url and args.transport == "https":
        transport_url = environ.get(RECEIVER_URL_ENV, "").strip()
    if not transport_url:
        raise UsageError("--transport_url is required for sqs (the queue URL)" if args.transport == "sqs" else
                         f"give --transport_url or set ${RECEIVER_URL_ENV} (the URL `make deploy-receiver` prints)")
    try:
        return subscription_body(
            context_type=args.context_type, context_id=args.context_id,
            event_types=[e for value in args.event_types for e in value.split(",")],
            format=args.format, transport_type=args.transport, transport_url=transport_url,
        )
    except LtiError as exc:
        raise UsageError(str(exc)) from None


def run_command(args: Any, *, environ: Mapping[str, str], out: Any, sender: Sender | None = None,
                secrets: list[str] | None = None) -> None:
    """Carry out one action, writing JSON lines to ``out``. Raises LtiError (UsageError for usage)."""
    http: Sender = sender or (lambda request: send(request, timeout=args.timeout))
    try:
        base_url(args.canvas_url)
    except LtiError as exc:
        raise UsageError(str(exc)) from None
    subscription = _subscription_from(args, environ) if args.lti_action in ("create", "update") else None
    token = resolve_token(args, environ, http, [] if secrets is None else secrets)
    action = args.lti_action
    if action == "list":
        for item in list_all(args.canvas_url, token, sender=http):
            out.write(orjson.dumps(item) + b"\n")
        return
    if action == "create":
        request = create_request(args.canvas_url, token, subscription)  # type: ignore[arg-type]
    elif action == "update":
        request = update_request(args.canvas_url, token, args.subscription_id, subscription)  # type: ignore[arg-type]
    elif action == "show":
        request = show_request(args.canvas_url, token, args.subscription_id)
    else:
        request = delete_request(args.canvas_url, token, args.subscription_id)
    out.write(orjson.dumps(parse_json(action, http(request))) + b"\n")


def main(args: Any, environ: Mapping[str, str] | None = None) -> int:
    """Entry point for ``canvas-events lti-subscriptions``: exit 0, 1 (Canvas or network) or 2 (usage)."""
    import os
    import sys

    environ = os.environ if environ is None else environ
    secrets = [environ.get(TOKEN_ENV, ""), environ.get(SECRET_ENV, "")]
    try:
        run_command(args, environ=environ, out=sys.stdout.buffer, secrets=secrets)
    except LtiError as exc:
        message = str(exc)
        for secret in secrets:  # belt and braces: no message of ours holds one, nor should Canvas's
            if len(secret.strip()) >= 8:
                message = message.replace(secret.strip(), "[redacted]")
        print(f"{PROG}: {message}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    finally:
        sys.stdout.flush()
    return 0

