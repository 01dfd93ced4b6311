"""Feed command lines to the real gcloud CLI in one process; report how far each one got.

Run by the Cloud SDK's own Python (tests/deploy/test_make_targets.py does it, offline, with a
throwaway config). Reads shell-quoted ``gcloud ...`` lines on stdin and prints a JSON list of
``{"exit": code, "stderr": text}``. Exit 2 means gcloud rejected the arguments; exit 1 with
"no active account" means the arguments were accepted and the command stopped at
authentication, before any request. One process instead of one per line: gcloud takes about
a second to start, its argument parser a few milliseconds per command.
"""
import json
import os
import shlex
import sys
import tempfile


def main() -> None:
    from googlecloudsdk import gcloud_main

    cli = gcloud_main.CreateCLI([])
    results = []
    for line in sys.stdin.read().splitlines():
        argv = shlex.split(line)
        assert argv and argv[0] == "gcloud", line
        with tempfile.TemporaryFile(mode="w+") as err:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(err.fileno(), 2)
            code = 0
            try:
                cli.Execute(argv[1:])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # noqa: BLE001 - reported, not raised
                code = f"{type(exc).__name__}: {exc}"
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
            err.seek(0)
            results.append({"exit": code, "stderr": err.read()[-2000:]})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
