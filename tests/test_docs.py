"""The README documents what the code does: every option, every setting, the two commands."""
import re
from pathlib import Path

import pytest

from pipeline.options import option_specs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", [spec.name for spec in option_specs()])
def test_every_pipeline_option_is_in_the_readme_table(name):
    assert re.search(rf"^\| `--{name}` \|", README, re.M), f"--{name} missing from README configuration table"


def test_readme_lists_no_option_the_pipeline_lacks():
    documented = set(re.findall(r"^\| `--(\w+)` \|", README, re.M))
    assert documented == {spec.name for spec in option_specs()}


def receiver_env_vars() -> set[str]:
    source = (ROOT / "pipeline" / "receiver" / "config.py").read_text()
    return set(re.findall(r"""environ(?:\.get\(|\[)["']([A-Z_]+)["']""", source))


def test_every_receiver_setting_is_in_the_readme():
    names = receiver_env_vars()
    assert "PUBSUB_TOPIC" in names and "JWKS_URL" in names
    for name in names:
        assert re.search(rf"^\| `{name}` \|", README, re.M), f"{name} missing from README receiver table"


def test_the_two_commands_and_ci():
    assert "make demo" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
