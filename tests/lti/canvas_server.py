"""A loopback stand-in for Canvas's webhook subscriptions API and its LTI 2 token endpoint.

Written from Canvas's documentation ("Webhooks Subscriptions for Plagiarism Platform", "JWT
Access Tokens for LTI2 Tools") and ``Lti::SubscriptionsApiController``:

- ``POST /api/lti/accounts/:id/authorize``: form ``grant_type=urn:ietf:params:oauth:grant-type:
  jwt-bearer`` and ``assertion``, a JWT signed HS256 with the tool proxy's shared secret, ``sub``
  its GUID, ``aud`` this URL, with ``exp``/``iat``/``jti``. Answers ``{"access_token",
  "token_type": "bearer", "expires_in": "3600"}``; a bad assertion gets 400.
- ``/api/lti/subscriptions[/:id]`` with ``Authorization: Bearer <token>`` (401 without a token
  it issued or was given). Create and update take ``{"subscription": {...}}``: a missing
  ``subscription`` or a ContextType other than assignment/account/course is 400
  ``{"error": "Invalid subscription"}``; a context the tool is not installed in is 401
  ``{"error": "Unauthorized subscription"}`` (the controller's rescue_from). The rest is the
  subscription service's answer forwarded as is: here 422 for a Format, TransportType or
  TransportMetadata.Url it would not take, 404 ``{}`` for an unknown id, 200 with the
  subscription (``Id`` added) otherwise. List pages ``page_size`` (Canvas: 100) at a time; a
  ``StartKey`` request header continues after the ``EndKey`` of the previous answer, a JSON
  object like the documented ``{"Id": ..., "DeveloperKey": ...}``.

``fail_next`` forces the next answer (status, body[, headers]) to test error paths (e.g. 403); ``requests``
records (method, path, headers) of every request.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from devkit.loopback import LoopbackHttpServer

DEVELOPER_KEY = "10000000000001"


class LoopbackCanvas(LoopbackHttpServer):
    def __init__(self, *, tool_proxy_guid: str = "tp-guid-1", shared_secret: str = "s" * 32,
                 tokens: set[str] | None = None, contexts: set[tuple[str, str]] | None = None,
                 page_size: int = 100):
        self.tool_proxy_guid = tool_proxy_guid
        self.shared_secret = shared_secret
        self.tokens: set[str] = set(tokens or ())
        self.contexts = contexts if contexts is not None else {("course", "1"), ("account", "1"), ("assignment", "7")}
        self.page_size = page_size
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.fail_next: tuple[Any, ...] | None = None  # (status, body[, headers])
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.used_jtis: set[str] = set()
        self._lock = threading.Lock()
        canvas = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with canvas._lock:
                    canvas.requests.append((self.command, self.path, dict(self.headers.items())))
                    forced, canvas.fail_next = canvas.fail_next, None
                if forced is not None:
                    return self._answer(*forced)
                status, answer, headers = canvas.route(self.command, self.path, self.headers, body)
                self._answer(status, answer, headers)

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server naming)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._serve(Handler, "loopback-canvas")
        self.url = self.base_url
        self.authorize_url = f"{self.url}/api/lti/accounts/1/authorize"

    # --- routes -------------------------------------------------------------------------------

    def route(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        if method == "POST" and len(segments) == 5 and segments[:3] == ["api", "lti", "accounts"] \
                and segments[4] == "authorize":
            return self.authorize(body)
        if segments[:3] != ["api", "lti", "subscriptions"] or len(segments) > 4:
            return 404, {"errors": [{"message": "The specified resource does not exist."}]}, {}
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in self.tokens:
            return 401, {"errors": [{"message": "Invalid access token."}]}, {}
        subscription_id = segments[3] if len(segments) == 4 else None
        with self._lock:
            if subscription_id is None and method == "GET":
                return self.index(headers.get("StartKey"))
            if subscription_id is None and method == "POST":
                return self.save(None, body)
            if subscription_id is not None and subscription_id not in self.subscriptions:
                return 404, {}, {}
            if method == "GET":
                return 200, self.subscriptions[subscription_id], {}
            if method == "PUT":
                return self.save(subscription_id, body)
            if method == "DELETE":
                del self.subscriptions[subscription_id]
                return 200, {}, {}
        return 404, {"errors": [{"message": "The specified resource does not exist."}]}, {}

    def authorize(self, body: bytes) -> tuple[int, Any, dict[str, str]]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or "assertion" not in form:
            return 400, {"error": "invalid_request"}, {}
        try:
            claims = jwt.decode(form["assertion"], self.shared_secret, algorithms=["HS256"],
                                audience=self.authorize_url, options={"require": ["exp", "iat", "jti", "sub"]})
        except jwt.InvalidTokenError as exc:
            return 400, {"error": "invalid_grant", "error_description": type(exc).__name__}, {}
        if claims["sub"] != self.tool_proxy_guid or claims["jti"] in self.used_jtis:
            return 400, {"error": "invalid_grant"}, {}
        self.used_jtis.add(claims["jti"])
        token = jwt.encode({"iss": "Canvas", "sub": claims["sub"], "exp": int(time.time()) + 3600,
                            "jti": str(uuid.uuid4())}, "canvas-own-secret-key-for-tests-only", algorithm="HS256")
        self.tokens.add(token)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": "3600"}, {}

    def save(self, subscription_id: str | None, body: bytes) -> tuple[int, Any, dict[str, str]]:
        try:
            subscription = json.loads(body)["subscription"]
            assert isinstance(subscription, dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            return 400, {"error": "Invalid subscription"}, {}
        if subscription.get("ContextType") not in ("assignment", "account", "course"):
            return 400, {"error": "Invalid subscription"}, {}
        if (subscription.get("ContextType"), str(subscription.get("ContextId"))) not in self.contexts:
            return 401, {"error": "Unauthorized subscription"}, {}
        problems = []
        if subscription.get("Format") not in ("live-event", "caliper"):
            problems.append("Format must be live-event or caliper")
        if subscription.get("TransportType") not in ("sqs", "https"):
            problems.append("TransportType must be sqs or https")
        if not str((subscription.get("TransportMetadata") or {}).get("Url", "")).startswith("https://"):
            problems.append("TransportMetadata.Url must be an https URL")
        if not subscription.get("EventTypes"):
            problems.append("EventTypes must not be empty")
        if problems:
            return 422, {"errors": problems}, {}
        stored = {**subscription, "Id": subscription_id or str(uuid.uuid4()), "DeveloperKey": DEVELOPER_KEY,
                  "RootAccountId": "1", "OwnerId": self.tool_proxy_guid}
        self.subscriptions[stored["Id"]] = stored
        return 200, stored, {}

    def index(self, start_key: str | None) -> tuple[int, Any, dict[str, str]]:
        ids = sorted(self.subscriptions)
        if start_key:
            try:
                after = json.loads(start_key)["Id"]
            except (ValueError, KeyError, TypeError):
                return 400, {"error": "Invalid StartKey"}, {}
            ids = [i for i in ids if i > after]
        page, rest = ids[: self.page_size], ids[self.page_size:]
        headers = {"EndKey": json.dumps({"Id": page[-1], "DeveloperKey": DEVELOPER_KEY})} if rest else {}
        return 200, [self.subscriptions[i] for i in page], headers
