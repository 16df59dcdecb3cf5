"""``lrbot serve`` as a real process on a database whose schema it does not match: it says
why and exits 2 before it talks to Slack; after ``lrbot db upgrade`` it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from bot import schema
from bot.store import Store
from tests.helpers import leaks
from tests.helpers.legacy import create_legacy_tables
from tests.helpers.process import START_SECONDS, BotProcess, World, bot_world


def refusal(world: World, name: str) -> tuple[int, str]:
    """``lrbot serve`` on the world's database: its exit status and its output's last line,
    checking that it never reached Slack."""
    process = BotProcess(world.environment(), world.workdir, world.workdir / f"{name}.log")
    world.processes.append(process)  # killed and its log printed on the way out
    leaks.watch_output(f"lrbot serve ({name})", process.log, process.log_path)
    status = process.popen.wait(START_SECONDS)
    assert world.slack.call_count("auth.test") == 0  # it stopped before Slack
    return status, process.log().strip().splitlines()[-1]


def test_serve_refuses_tables_made_before_migrations_until_db_upgrade(
    database_url: str, tmp_path: Path
) -> None:
    with bot_world(tmp_path) as world:
        world.database_url = database_url
        leaks.watch_database(database_url)
        engine = sa.create_engine(database_url)
        create_legacy_tables(engine)  # what lrbot did before migrations
        engine.dispose()

        assert refusal(world, "legacy") == (
            2,
            "lrbot: the database's tables were made before schema migrations (no revision"
            f" recorded; this lrbot needs {schema.head()}): run `lrbot db upgrade`",
        )

        upgrade = subprocess.run(
            [sys.executable, "-m", "bot", "db", "upgrade"],
            cwd=world.workdir,
            env=world.environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert upgrade.returncode == 0, upgrade.stderr

        world.start()  # ready: /healthz answers


def test_serve_refuses_a_schema_a_newer_lrbot_made(tmp_path: Path) -> None:
    with bot_world(tmp_path) as world:
        Store(world.database_url).close()
        engine = sa.create_engine(world.database_url)
        with engine.begin() as conn:  # as a newer lrbot's `lrbot db upgrade` leaves it
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        engine.dispose()

        assert refusal(world, "ahead") == (
            2,
            "lrbot: the database schema is at revision 9999, which this lrbot does not know"
            f" (it needs {schema.head()}): a newer lrbot upgraded it; run that version, or"
            " restore the backup taken before the upgrade",
        )
