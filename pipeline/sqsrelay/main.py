"""`canvas-events sqs-relay`: options, the boto3 and Pub/Sub clients, signals, exit status.

Every option also reads an environment variable (named in its help), so the Cloud Run
service (mk/sqs.mk) is configured with environment variables and Secret Manager references
alone. AWS credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, a profile, a role): never an option, never logged.

Exit status: 0 after SIGTERM/SIGINT (in-flight work published and deleted) or an idle exit;
1 when the queue cannot be used at start (wrong URL, no credentials, no permission);
2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping, Sequence

from pipeline.sqsrelay import plan

PROG = "canvas-events sqs-relay"
USAGE_ERROR = 2
START_ERROR = 1
_TOPIC_PREFIX = "projects/"


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    env = environ.get
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Relay Canvas Live Events from an AWS SQS queue to the Pub/Sub topic the receiver "
                    "publishes to: each body unchanged, deleted from SQS only once Pub/Sub confirmed it.",
    )
    parser.add_argument("--queue_url", default=env("SQS_QUEUE_URL"),
                        help="the SQS queue Canvas delivers to (env SQS_QUEUE_URL). Required.")
    parser.add_argument("--topic", default=env("PUBSUB_TOPIC"),
                        help="Pub/Sub topic, projects/PROJECT/topics/NAME: the receiver's (env PUBSUB_TOPIC). Required.")
    parser.add_argument("--region", default=env("SQS_REGION"),
                        help="AWS region of the queue (env SQS_REGION). Default: read from an "
                             "sqs.REGION.amazonaws.com queue URL, else boto3's configured region.")
    parser.add_argument("--endpoint_url", default=env("SQS_ENDPOINT_URL"),
                        help="SQS API endpoint, for a local SQS server or a VPC endpoint (env SQS_ENDPOINT_URL). "
                             "Default: AWS's.")
    parser.add_argument("--idle_exit_seconds", type=float, default=float(env("IDLE_EXIT_SECONDS") or 0),
                        help="exit 0 once no message arrived for this long (env IDLE_EXIT_SECONDS); for batch "
                             "catch-up and tests. Default: 0, run until SIGTERM.")
    parser.add_argument("--dead_letter_output", default=env("DEAD_LETTER_OUTPUT"),
                        help="directory or gs:// prefix for messages Pub/Sub cannot take, one JSON-lines record "
                             "each (the pipeline's dead-letter shape) under sqs-relay/DATE/ (env "
                             "DEAD_LETTER_OUTPUT). Default: none; such messages then stay in the queue.")
    parser.add_argument("--receivers", type=int, default=int(env("SQS_RECEIVERS") or 4),
                        help="receive loops in flight at once, up to 10 messages each (env SQS_RECEIVERS). "
                             "Default: 4.")
    parser.add_argument("--max_message_bytes", type=int,
                        default=int(env("MAX_MESSAGE_BYTES") or plan.PUBSUB_MAX_REQUEST_BYTES),
                        help="a message larger than this (body plus attributes) is dead-lettered instead of "
                             f"published (env MAX_MESSAGE_BYTES). Default: {plan.PUBSUB_MAX_REQUEST_BYTES}, "
                             "Pub/Sub's limit.")
    parser.add_argument("--publish_timeout_seconds", type=float, default=float(env("PUBLISH_TIMEOUT_SECONDS") or 60),
                        help="how long one Publish is retried before its messages are handed back to SQS "
                             "(env PUBLISH_TIMEOUT_SECONDS). Default: 60.")
    parser.add_argument("--progress_seconds", type=float, default=float(env("PROGRESS_SECONDS") or 60),
                        help="interval of the progress line (env PROGRESS_SECONDS). Default: 60.")
    parser.add_argument("--health_port", type=int, default=int(env("PORT") or 0),
                        help="answer HTTP GET on this port, any path (200 while the relay runs); Cloud Run sets PORT "
                             "(env PORT). Default: 0, none.")
    return parser


def validate(args: argparse.Namespace) -> list[str]:
    errors = []
    if not args.queue_url:
        errors.append("--queue_url (or SQS_QUEUE_URL) is required")
    elif not args.queue_url.startswith(("https://", "http://")):
        errors.append("--queue_url must be the queue's URL, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME")
    if not args.topic:
        errors.append("--topic (or PUBSUB_TOPIC) is required")
    elif not (args.topic.startswith(_TOPIC_PREFIX) and "/topics/" in args.topic):
        errors.append("--topic must be projects/PROJECT/topics/NAME")
    if args.receivers < 1 or args.receivers > 50:
        errors.append("--receivers must be between 1 and 50")
    if args.idle_exit_seconds < 0:
        errors.append("--idle_exit_seconds must be >= 0")
    if args.max_message_bytes < 1:
        errors.append("--max_message_bytes must be positive")
    if args.publish_timeout_seconds <= 0 or args.progress_seconds <= 0:
        errors.append("--publish_timeout_seconds and --progress_seconds must be positive")
    return errors


def make_sqs_client(region: str | None, endpoint_url: str | None, pool: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=pool + 4, retries={"mode": "standard", "max_attempts": 5},
                    read_timeout=60, connect_timeout=10)
    return boto3.session.Session().client("sqs", region_name=region, endpoint_url=endpoint_url, config=config)


class _Health(BaseHTTPRequestHandler):
    relay: Any = None

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        relay = self.relay
        ok = relay is not None and not relay.stopping
        body = json.dumps({"status": "ok" if ok else "stopping", "relayed": relay.stats.relayed if relay else 0,
                           "dead_lettered": relay.stats.dead_lettered if relay else 0}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # health checks are not news
        pass


def _serve_health(port: int, relay: Any) -> ThreadingHTTPServer:
    handler = type("Health", (_Health,), {"relay": relay})
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    threading.Thread(target=server.serve_forever, name="sqs-health", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    parser = build_parser(environ)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    errors = validate(args)
    if errors:
        print(f"{PROG}: {'; '.join(errors)}", file=sys.stderr)
        return USAGE_ERROR
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("canvas_sqs_relay").setLevel(logging.INFO)
    for chatty in ("botocore", "boto3", "urllib3"):  # e.g. "Found credentials in environment variables."
        logging.getLogger(chatty).setLevel(logging.WARNING)

    from pipeline.sqsrelay.relay import PubSubPublisher, Relay, dead_letter_sink

    try:
        import boto3  # noqa: F401
    except ImportError:
        print(f"{PROG}: boto3 is not installed; install the relay's extra: pip install 'canvas-live-events[sqs]'",
              file=sys.stderr)
        return START_ERROR
    region = args.region or plan.region_from_queue_url(args.queue_url)
    sqs = make_sqs_client(region, args.endpoint_url, args.receivers)
    publisher = PubSubPublisher(args.topic, timeout=args.publish_timeout_seconds)
    relay = Relay(
        sqs, args.queue_url, publisher,
        dead_letters=dead_letter_sink(args.dead_letter_output),
        receivers=args.receivers,
        idle_exit_seconds=args.idle_exit_seconds,
        progress_seconds=args.progress_seconds,
        max_message_bytes=args.max_message_bytes,
    )
    try:
        relay.check_queue()
    except Exception as exc:  # NoCredentialsError, QueueDoesNotExist, AccessDenied, unreachable endpoint
        print(f"{PROG}: cannot use the queue {args.queue_url}: {type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return START_ERROR

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("canvas_sqs_relay").info("sqs-relay: %s: finishing in-flight work",
                                                   signal.Signals(signum).name)
        relay.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health = _serve_health(args.health_port, relay) if args.health_port else None
    logging.getLogger("canvas_sqs_relay").info(
        "sqs-relay: %s -> %s (%d receivers, visibility %.0f s)", args.queue_url, args.topic, args.receivers,
        relay.visibility_seconds)
    try:
        stats = relay.run()
    finally:
        if health is not None:
            health.shutdown()
        publisher.close()
    logging.getLogger("canvas_sqs_relay").info(
        "sqs-relay: stopped: relayed %d, dead-lettered %d, handed back %d", stats.relayed, stats.dead_lettered,
        stats.released)
    return 0


if __name__ == "__main__":
    sys.exit(main())
