"""`canvas-events lti-subscriptions` against a loopback Canvas written from the documentation.

Pure parts first (request building, answers, the token assertion), then the command end to end
over HTTP: every action, paging through EndKey/StartKey, a token obtained with the tool proxy's
credentials, and every Canvas error as one line with exit 1, with the token and the shared
secret in neither stdout nor stderr.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import jwt
import pytest

from pipeline import lti_subscriptions as lti
from pipeline.cli import main as cli_main
from devkit.emulators import free_port
from tests.lti.canvas_server import LoopbackCanvas

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-9f3c1d7be2a84e06b5c4-very-secret"
SECRET = "shared-secret-51b0e4c2d9f7a3-0123456789"
RECEIVER = "https://us-central1-demo.cloudfunctions.net/canvas-events-receiver"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/canvas-events"


# --- pure parts --------------------------------------------------------------------------------

def test_subscription_body_has_the_documented_shape() -> None:
    body = lti.subscription_body(context_type="course", context_id="42", event_types=["submission_created", " "],
                                 format="caliper", transport_type="sqs", transport_url=QUEUE)
    assert body == {"ContextType": "course", "ContextId": "42", "EventTypes": ["submission_created"],
                    "Format": "caliper", "TransportType": "sqs", "TransportMetadata": {"Url": QUEUE}}


@pytest.mark.parametrize(("change", "complaint"), [
    ({"context_type": "user"}, "context type"),
    ({"context_id": " "}, "context id"),
    ({"event_types": []}, "event type"),
    ({"format": "json"}, "format"),
    ({"transport_type": "kinesis"}, "transport must"),
    ({"transport_url": "http://plain.example/hook"}, "https://"),
])
def test_subscription_body_refuses_what_canvas_would(change: dict, complaint: str) -> None:
    args = dict(context_type="course", context_id="1", event_types=["x"], format="live-event",
                transport_type="https", transport_url=RECEIVER)
    with pytest.raises(lti.LtiError, match=complaint):
        lti.subscription_body(**{**args, **change})


def test_requests_carry_method_path_token_and_json() -> None:
    create = lti.create_request("https://canvas.example/", TOKEN, {"ContextType": "course"})
    assert (create.method, create.url) == ("POST", "https://canvas.example/api/lti/subscriptions")
    assert create.headers["Authorization"] == f"Bearer {TOKEN}" and json.loads(create.body) == {
        "subscription": {"ContextType": "course"}}
    assert TOKEN not in repr(create)
    show = lti.show_request("https://canvas.example", TOKEN, "a/b")
    assert (show.method, show.url, show.body) == ("GET", "https://canvas.example/api/lti/subscriptions/a%2Fb", None)
    assert lti.delete_request("https://canvas.example", TOKEN, "x").method == "DELETE"
    assert lti.update_request("https://canvas.example", TOKEN, "x", {}).method == "PUT"
    assert "StartKey" not in lti.list_request("https://canvas.example", TOKEN).headers
    assert lti.list_request("https://canvas.example", TOKEN, '{"Id":"x"}').headers["StartKey"] == '{"Id":"x"}'


@pytest.mark.parametrize("url", ["http://canvas.example", "ftp://canvas.example", "https://u:p@canvas.example",
                                 "https://canvas.example/?access_token=x", "canvas.example"])
def test_canvas_url_must_be_https_except_loopback(url: str) -> None:
    with pytest.raises(lti.LtiError):
        lti.base_url(url)
    assert lti.base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(("body", "message"), [
    (b'{"error": "Unauthorized subscription"}', "Unauthorized subscription"),
    (b'{"errors": [{"message": "Invalid access token."}]}', "Invalid access token."),
    (b'{"errors": ["Format must be live-event or caliper"]}', "Format must be live-event or caliper"),
    (b"{}", "(no details)"),
    (b"<html>\n Bad\n gateway</html>", "<html> Bad gateway</html>"),
    (b"", "(empty body)"),
])
def test_error_message_reads_canvas_error_shapes(body: bytes, message: str) -> None:
    assert lti.error_message(body) == message
    error = pytest.raises(lti.CanvasApiError, lti.parse_json, "show", lti.HttpResponse(404, {}, body)).value
    assert str(error) == f"show: Canvas answered 404: {message}" and "\n" not in str(error)


def test_end_key_becomes_the_next_start_key() -> None:
    assert lti.next_start_key(lti.HttpResponse(200, {"endkey": '{"Id": "b"}'}, b"[]")) == '{"Id": "b"}'
    assert lti.next_start_key(lti.HttpResponse(200, {}, b"[]")) is None


def test_token_assertion_is_the_documented_jwt() -> None:
    url = "https://canvas.example/api/lti/accounts/1/authorize"
    assertion = lti.token_assertion("tp-guid", url, SECRET, now=1_700_000_000, jti="j-1")
    assert jwt.get_unverified_header(assertion)["alg"] == "HS256"
    claims = jwt.decode(assertion, SECRET, algorithms=["HS256"], audience=url, options={"verify_exp": False})
    assert claims == {"sub": "tp-guid", "aud": url, "iat": 1_700_000_000, "exp": 1_700_000_060, "jti": "j-1"}
    form = lti.token_request(url, assertion).body.decode()
    assert form.startswith("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")


# --- the command over HTTP ---------------------------------------------------------------------

@pytest.fixture
def canvas() -> Iterator[LoopbackCanvas]:
    with LoopbackCanvas(tokens={TOKEN}, tool_proxy_guid="tp-guid-1", shared_secret=SECRET, page_size=100) as server:
        yield server


def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The real command in a subprocess: exit code, stdout, stderr."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CANVAS_LTI_") and k != "RECEIVER_URL"}
    environ.update(env or {})
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "lti-subscriptions", *argv], cwd=REPO,
                          env=environ, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def call(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str,
         env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The same command in-process (faster): exit code, stdout, stderr; neither holds a secret."""
    for name in (lti.TOKEN_ENV, lti.SECRET_ENV, lti.RECEIVER_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    capfd.readouterr()
    code = cli_main(["lti-subscriptions", *argv])
    out, err = capfd.readouterr()
    assert TOKEN not in out + err and SECRET not in out + err
    return code, out, err


CREATE = ("--context_type=course", "--context_id=1", "--event_types=submission_created,submission_updated")


def test_create_show_update_list_delete(canvas: LoopbackCanvas, capfd, monkeypatch) -> None:
    env = {lti.TOKEN_ENV: TOKEN, lti.RECEIVER_URL_ENV: RECEIVER}
    code, out, err = call(capfd, monkeypatch, "create", f"--canvas_url={canvas.url}", *CREATE, env=env)
    assert (code, err) == (0, "")
    created = json.loads(out)
    assert canvas.subscriptions[created["Id"]] == created
    assert {k: created[k] for k in ("ContextType", "ContextId", "EventTypes", "Format", "TransportType",
                                     "TransportMetadata")} == {
        "ContextType": "course", "ContextId": "1", "EventTypes": ["submission_created", "submission_updated"],
        "Format": "live-event", "TransportType": "https", "TransportMetadata": {"Url": RECEIVER}}
    method, path, headers = canvas.requests[-1]
    headers = {k.lower(): v for k, v in headers.items()}
    assert (method, path, headers["authorization"], headers["content-type"]) == (
        "POST", "/api/lti/subscriptions", f"Bearer {TOKEN}", "application/json")

    code, out, _ = call(capfd, monkeypatch, "show", f"--canvas_url={canvas.url}", created["Id"], env=env)
    assert code == 0 and json.loads(out) == created

    code, out, _ = call(capfd, monkeypatch, "update", f"--canvas_url={canvas.url}", created["Id"],
                        "--context_type=course", "--context_id=1", "--event_types=grade_change",
                        "--format=caliper", "--transport=sqs", f"--transport_url={QUEUE}", env=env)
    updated = json.loads(out)
    assert code == 0 and updated["Id"] == created["Id"]
    assert (updated["Format"], updated["TransportType"], updated["TransportMetadata"]) == (
        "caliper", "sqs", {"Url": QUEUE})
    assert canvas.requests[-1][:2] == ("PUT", f"/api/lti/subscriptions/{created['Id']}")

    code, out, _ = call(capfd, monkeypatch, "list", f"--canvas_url={canvas.url}", env=env)
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == [updated]

    code, out, _ = call(capfd, monkeypatch, "delete", f"--canvas_url={canvas.url}", created["Id"], env=env)
    assert code == 0 and canvas.subscriptions == {}
    code, out, err = call(capfd, monkeypatch, "show", f"--canvas_url={canvas.url}", created["Id"], env=env)
    assert (code, out) == (1, "")
    assert err == "canvas-events lti-subscriptions: show: Canvas answered 404: (no details)\n"


def test_list_follows_end_key_into_start_key_until_the_last_page(canvas: LoopbackCanvas, capfd, monkeypatch) -> None:
    for i in range(250):
        canvas.subscriptions[f"sub-{i:04d}"] = {"Id": f"sub-{i:04d}", "ContextType": "course"}
    code, out, err = call(capfd, monkeypatch, "list", f"--canvas_url={canvas.url}", env={lti.TOKEN_ENV: TOKEN})
    assert (code, err) == (0, "")
    assert [json.loads(line)["Id"] for line in out.splitlines()] == sorted(canvas.subscriptions)
    start_keys = [{k.lower(): v for k, v in headers.items()}.get("startkey") for _, _, headers in canvas.requests]
    assert start_keys == [None, json.dumps({"Id": "sub-0099", "DeveloperKey": "10000000000001"}),
                          json.dumps({"Id": "sub-0199", "DeveloperKey": "10000000000001"})]


def test_a_token_obtained_with_the_tool_proxy_credentials(canvas: LoopbackCanvas, tmp_path: Path, capfd,
                                                          monkeypatch) -> None:
    canvas.tokens.clear()  # only a token the authorize endpoint issues is accepted
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    creds = ("--tool_proxy_guid=tp-guid-1", f"--authorize_url={canvas.authorize_url}",
             f"--shared_secret_file={secret_file}")
    code, out, err = call(capfd, monkeypatch, "create", f"--canvas_url={canvas.url}", *creds, *CREATE,
                          f"--transport_url={RECEIVER}")
    assert (code, err) == (0, "") and json.loads(out)["Id"] in canvas.subscriptions
    assert [(m, p) for m, p, _ in canvas.requests] == [("POST", "/api/lti/accounts/1/authorize"),
                                                       ("POST", "/api/lti/subscriptions")]
    issued = {k.lower(): v for k, v in canvas.requests[1][2].items()}["authorization"].removeprefix("Bearer ")
    assert issued in canvas.tokens and issued not in out

    secret_file.write_text("not-the-shared-secret-but-as-long-as-one")
    code, out, err = call(capfd, monkeypatch, "list", f"--canvas_url={canvas.url}", *creds)
    assert (code, out) == (1, "")
    assert err == "canvas-events lti-subscriptions: token: Canvas answered 400: invalid_grant; InvalidSignatureError\n"


@pytest.mark.parametrize(("forced", "argv", "line"), [
    (None, ("create", *CREATE[:1], "--context_id=99", *CREATE[2:]), "create: Canvas answered 401: Unauthorized subscription"),
    ((403, b'{"errors": [{"message": "user not authorized to perform that action"}]}'), ("list",),
     "list: Canvas answered 403: user not authorized to perform that action"),
    (None, ("show", "no-such-id"), "show: Canvas answered 404: (no details)"),
    ((422, b'{"errors": ["EventTypes must not be empty"]}'), ("create", *CREATE),
     "create: Canvas answered 422: EventTypes must not be empty"),
    ((500, b'{"error": "Subscription service not configured"}'), ("delete", "x"),
     "delete: Canvas answered 500: Subscription service not configured"),
])
def test_canvas_errors_are_one_line_and_exit_1_without_the_token(
    canvas: LoopbackCanvas, forced, argv, line: str
) -> None:
    canvas.fail_next = forced
    code, out, err = run_cli(argv[0], f"--canvas_url={canvas.url}", *argv[1:],
                             env={lti.TOKEN_ENV: TOKEN, lti.RECEIVER_URL_ENV: RECEIVER})
    assert (code, out, err) == (1, "", f"canvas-events lti-subscriptions: {line}\n")


def test_a_wrong_token_and_an_unreachable_canvas_are_one_line_without_the_token(
    canvas: LoopbackCanvas, tmp_path: Path
) -> None:
    wrong = tmp_path / "token"
    wrong.write_text("wrong-token-0c1d2e3f4a5b")
    code, out, err = run_cli("list", f"--canvas_url={canvas.url}", f"--access_token_file={wrong}")
    assert (code, out) == (1, "")
    assert err == "canvas-events lti-subscriptions: list: Canvas answered 401: Invalid access token.\n"
    assert "wrong-token" not in err

    nobody = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_cli("list", f"--canvas_url={nobody}", env={lti.TOKEN_ENV: TOKEN, lti.SECRET_ENV: SECRET})
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith(f"canvas-events lti-subscriptions: list: cannot reach {nobody[7:]}: ConnectionRefusedError")
    assert TOKEN not in err and SECRET not in err


def test_usage_errors_exit_2_and_name_what_is_missing(canvas: LoopbackCanvas) -> None:
    code, _, err = run_cli("list", f"--canvas_url={canvas.url}")
    assert code == 2 and "no access token" in err
    code, _, err = run_cli("create", f"--canvas_url={canvas.url}", *CREATE, env={lti.TOKEN_ENV: TOKEN})
    assert code == 2 and "RECEIVER_URL" in err
    code, _, err = run_cli("create", f"--canvas_url={canvas.url}", *CREATE, "--transport=sqs",
                           env={lti.TOKEN_ENV: TOKEN})
    assert code == 2 and "queue URL" in err
    code, _, err = run_cli("list", "--canvas_url=http://canvas.example", env={lti.TOKEN_ENV: TOKEN})
    assert code == 2 and "https://" in err
    assert canvas.requests == []  # nothing was sent for any of them


def test_a_redirect_is_not_followed_with_the_token(canvas: LoopbackCanvas) -> None:
    with LoopbackCanvas(tokens={TOKEN}) as elsewhere:
        canvas.fail_next = (302, b"", {"Location": f"{elsewhere.url}/api/lti/subscriptions"})
        code, out, err = run_cli("list", f"--canvas_url={canvas.url}", env={lti.TOKEN_ENV: TOKEN})
        assert (code, out) == (1, "") and err.count("\n") == 1
        assert "redirected (302)" in err and TOKEN not in err
        assert elsewhere.requests == []  # the token never reached the other host
