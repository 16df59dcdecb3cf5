"""``lrbot``'s start-up: a bad or missing setting stops it with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def lrbot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LRBOT_", "DEFENDER_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "LRBOT_APPROVERS"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "LRBOT_APPROVERS": "U0APP0001"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "LRBOT_APPROVERS": "bob"}, "LRBOT_APPROVERS"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "LRBOT_POLL_SECONDS": "soon"}, "LRBOT_POLL_SECONDS"),
        (
            {
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_SIGNING_SECRET": "s3cr3t-value",
                "LRBOT_APPROVERS": "U0APP0001",
                "DEFENDER_CLOUD": "azure",
            },
            "DEFENDER_CLOUD",
        ),
        (
            {
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_SIGNING_SECRET": "s3cr3t-value",
                "LRBOT_APPROVERS": "U0APP0001",
            },
            "DEFENDER_TENANT_ID",
        ),
    ],
)
def test_serve_refuses_to_start_naming_the_setting(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = lrbot(tmp_path, "serve", "--port", "0", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrbot: configuration error: ")
    assert named in lines[0]
    assert "s3cr3t-value" not in result.stderr and "xoxb-1" not in result.stderr


def test_python_dash_m_bot_is_the_same_program(tmp_path: Path) -> None:
    result = lrbot(tmp_path, "--help")
    assert result.returncode == 0 and "demo" in result.stdout and "serve" in result.stdout
