"""``lrbot audit export`` and ``lrbot audit verify``, as a separate process with the
database setting alone (no Slack or Defender settings in its environment)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import schema
from bot.store import Store
from tests.helpers.legacy import create_legacy_tables
from tests.test_audit import NOW, request, run_to_end


def lrbot(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LRBOT_", "DEFENDER_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={**clean, "LRBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """Two requests, a day apart: 5 + 1 entries on 28 November, 1 on the 29th."""
    store = Store(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    request(store, "lr-aaaaaaaa")
    run_to_end(store, "lr-aaaaaaaa")
    store.audit("lr-aaaaaaaa", "result", None, NOW, position=1, sha256="ab" * 32, size=3)
    request(store, "lr-bbbbbbbb", NOW + timedelta(days=1))
    store.close()
    return tmp_path


def test_export_jsonl_to_stdout(trail: Path) -> None:
    result = lrbot(trail, "audit", "export")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, 8))
    assert records[0]["actor"] == "U0REQ0001" and records[0]["kind"] == "requested"
    assert records[5]["kind"] == "result" and json.loads(records[5]["detail"])["sha256"]
    assert records[0]["at"] == "2026-11-28T04:00:00.000000+00:00"


def test_export_since_a_date_or_a_time(trail: Path) -> None:
    by_date = lrbot(trail, "audit", "export", "--since", "2026-11-29")
    assert [json.loads(x)["request_id"] for x in by_date.stdout.splitlines()] == ["lr-bbbbbbbb"]
    by_time = lrbot(trail, "audit", "export", "--since", "2026-11-28T05:00:00+01:00")
    assert len(by_time.stdout.splitlines()) == 7  # 04:00 UTC is 05:00 at +01:00
    until = lrbot(trail, "audit", "export", "--until", "2026-11-29")
    assert len(until.stdout.splitlines()) == 6


def test_export_csv_to_a_file(trail: Path) -> None:
    out = trail / "audit.csv"
    args = ("audit", "export", "--format", "csv", "--since", "2026-11-29", "--output", str(out))
    result = lrbot(trail, *args)
    assert result.returncode == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["seq"], r["kind"], r["request_id"]) for r in rows] == [
        ("7", "requested", "lr-bbbbbbbb")
    ]
    assert len(rows[0]["hash"]) == 64 and len(rows[0]["prev_hash"]) == 64


@pytest.mark.parametrize("flag", ["--since", "--until"])
def test_a_bad_date_is_one_line_and_exit_2(trail: Path, flag: str) -> None:
    result = lrbot(trail, "audit", "export", flag, "last tuesday")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "last tuesday" in lines[0] and "ISO" in lines[0]


def test_verify_intact(trail: Path) -> None:
    store = Store(f"sqlite:///{trail / 'audit.sqlite3'}")
    head = store.audit_head()
    store.close()
    assert head is not None
    result = lrbot(trail, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"audit trail intact: 7 entries, head {head.hash}"


def test_verify_broken(trail: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{trail / 'audit.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'U0EVIL001' WHERE seq = 2"))
    engine.dispose()
    result = lrbot(trail, "audit", "verify")
    assert result.returncode == 1
    assert result.stdout.strip() == (
        "audit trail BROKEN at entry seq 2: hash mismatch: the entry was changed"
    )


def test_no_database_is_an_error_not_an_empty_trail(tmp_path: Path) -> None:
    result = lrbot(tmp_path, "audit", "verify")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrbot: configuration error: ")
    assert "LRBOT_DATABASE_URL: no database at" in lines[0]
    assert not (tmp_path / "audit.sqlite3").exists()  # and none was created


def test_a_schema_this_lrbot_does_not_run_on_is_named_with_the_fix(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    create_legacy_tables(engine)  # the tables as lrbot made them before migrations
    engine.dispose()

    result = lrbot(tmp_path, "audit", "verify")

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "lrbot: configuration error: LRBOT_DATABASE_URL: the database's tables were made"
        " before schema migrations (no revision recorded; this lrbot needs"
        f" {schema.head()}): run `lrbot db upgrade`"
    ]
