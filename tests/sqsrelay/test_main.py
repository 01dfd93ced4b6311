"""`canvas-events sqs-relay` options: documented in the README, each with its environment variable."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main as cli_main
from pipeline.sqsrelay.main import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ROWS = dict(re.findall(r"^\| `--(\w+)` / `([A-Z_]+)` \|", README, re.M))


def options() -> dict[str, str]:
    """option name -> its environment variable, as the parser's help states it."""
    found = {}
    for action in build_parser({})._actions:
        if action.option_strings and action.option_strings[0] != "-h":
            found[action.option_strings[0][2:]] = re.search(r"\(env ([A-Z_]+)", action.help).group(1)
    return found


def test_every_option_and_its_variable_is_in_the_readme_table_and_nothing_else() -> None:
    assert ROWS == options()


def test_options_default_to_their_environment_variables() -> None:
    environ = {"SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q", "PUBSUB_TOPIC": "projects/p/topics/t",
               "SQS_RECEIVERS": "7", "IDLE_EXIT_SECONDS": "12", "PORT": "8080", "MAX_MESSAGE_BYTES": "1000"}
    args = build_parser(environ).parse_args([])
    assert (args.queue_url, args.topic, args.receivers, args.idle_exit_seconds, args.health_port,
            args.max_message_bytes) == (environ["SQS_QUEUE_URL"], "projects/p/topics/t", 7, 12.0, 8080, 1000)
    assert build_parser(environ).parse_args(["--receivers=2"]).receivers == 2  # the command line wins


def test_the_subcommand_is_wired_into_canvas_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["sqs-relay", "--queue_url=https://q", "--topic=bad", "--receivers=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("canvas-events sqs-relay: ") and "--topic must be" in err and "--receivers" in err
    assert len(err.strip().splitlines()) == 1


def test_without_boto3_the_relay_says_which_extra_to_install() -> None:
    probe = ("import sys; sys.modules['boto3'] = None; from pipeline.cli import main; "
             "sys.exit(main(['sqs-relay', '--queue_url=https://sqs.us-east-1.amazonaws.com/1/q', "
             "'--topic=projects/p/topics/t']))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1
    assert "boto3 is not installed" in proc.stderr and "canvas-live-events[sqs]" in proc.stderr
