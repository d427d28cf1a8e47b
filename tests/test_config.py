"""Settings from the environment, and the README that documents them and the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import SETTINGS_DOC, ConfigError, Settings
from tests.conftest import PROJECT_ROOT


def test_defaults_and_overrides():
    assert Settings.from_env({}).database_url is None
    s = Settings.from_env({"DATABASE_URL": "postgresql://x@h/db", "BRIDGE_PORT": "9000",
                           "BRIDGE_DATA_DIR": "/srv/bridge"})
    assert (s.database_url, s.http_port, s.data_dir) == ("postgresql://x@h/db", 9000, Path("/srv/bridge"))


def test_a_bad_number_names_the_setting():
    with pytest.raises(ConfigError, match="BRIDGE_PORT must be an integer, got 'eighty'"):
        Settings.from_env({"BRIDGE_PORT": "eighty"})


def test_readme_opens_with_the_run_and_test_commands_and_ci_runs_the_test_one():
    readme = (PROJECT_ROOT / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec make test$", ci, re.M)


def test_readme_settings_table_is_the_one_in_config():
    readme = (PROJECT_ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.*?) \| (.*?) \|$", readme, re.M)
    assert [(name, default, meaning) for name, default, meaning in rows] == SETTINGS_DOC
