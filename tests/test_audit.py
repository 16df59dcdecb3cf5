"""The audit trail: a hash chain that shows a changed, deleted or inserted entry."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.audit import (
    GENESIS,
    AuditEntry,
    AuditHead,
    entry_hash,
    export_rows,
    verify,
)
from bot.audit_cli import verify_store
from bot.records import RequestRecord, RequestState
from bot.store import Store, Transition, audit_head, audit_log
from commands.models import CommandSequence, GetFile

NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
REQUESTER = "U0REQ0001"
APPROVER = "U0APP0001"
ACTION = "7f3c9a2e-0000-4000-8000-000000000001"


def new_store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'lrbot.sqlite3'}")


def request(store: Store, request_id: str, now: datetime = NOW) -> None:
    record = RequestRecord(
        id=request_id,
        created_at=now,
        updated_at=now,
        requester=REQUESTER,
        channel="C0SOC0001",
        machine_id="a" * 40,
        machine_name="ws-001",
        machine={},
        commands=CommandSequence.of(GetFile(path="C:\\Temp\\a.txt")),
        justification="why",
        ticket=None,
        state=RequestState.AWAITING_APPROVAL,
        expires_at=now + timedelta(hours=1),
    )
    store.create(
        record,
        Transition().event("requested", REQUESTER, machine_id="a" * 40).send("post_request"),
        now,
    )


def run_to_end(store: Store, request_id: str, now: datetime = NOW) -> None:
    """approved → submitted (the action id on the row) → started → finished: 5 entries."""
    steps: list[tuple[dict[str, object], str, str | None, RequestState]] = [
        ({"state": RequestState.APPROVED}, "approved", APPROVER, RequestState.AWAITING_APPROVAL),
        (
            {"state": RequestState.PENDING, "action_id": f"{ACTION}-{request_id}"},
            "submitted",
            None,
            RequestState.APPROVED,
        ),
        ({"state": RequestState.IN_PROGRESS}, "started", None, RequestState.PENDING),
        ({"state": RequestState.FINISHED}, "finished", None, RequestState.IN_PROGRESS),
    ]
    for changes, kind, actor, expect in steps:
        done = store.transition(
            request_id, Transition(dict(changes)).event(kind, actor), now, expect=[expect]
        )
        assert done is not None


def entries(store: Store) -> list[AuditEntry]:
    return list(store.audit_entries())


def check(store: Store) -> tuple[bool, int | None, str]:
    result = verify(store.audit_entries(), store.audit_head())
    return result.ok, result.bad_seq, result.problem or ""


def sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = new_store(tmp_path)
    request(store, "lr-aaaaaaaa")
    run_to_end(store, "lr-aaaaaaaa")
    yield store
    store.close()


# -- the chain as written ---------------------------------------------------------------


def test_each_event_is_one_chained_entry_with_actor_request_and_action(store: Store) -> None:
    rows = entries(store)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert [(r.kind, r.actor) for r in rows] == [
        ("requested", REQUESTER),
        ("approved", APPROVER),
        ("submitted", None),
        ("started", None),
        ("finished", None),
    ]
    assert {r.request_id for r in rows} == {"lr-aaaaaaaa"}
    # Read from the row in the same transaction: the submission's own entry has it.
    assert [r.action_id for r in rows] == [None, None] + [f"{ACTION}-lr-aaaaaaaa"] * 3
    prev = GENESIS
    for row in rows:
        assert row.prev_hash == prev
        assert row.hash == entry_hash(
            row.seq, row.at, row.request_id, row.actor, row.kind, row.action_id, row.detail, prev
        )
        prev = row.hash
    assert store.audit_head() == AuditHead(seq=5, hash=prev)
    assert json.loads(rows[0].detail) == {"machine_id": "a" * 40}
    assert rows[0].at == NOW
    assert check(store) == (True, None, "")


def test_events_table_is_kept_as_before(store: Store) -> None:
    kinds = [e["kind"] for e in store.events_of("lr-aaaaaaaa")]
    assert kinds == ["requested", "approved", "submitted", "started", "finished"]


def test_a_failed_transition_appends_nothing(store: Store) -> None:
    moved = store.transition(
        "lr-aaaaaaaa",
        Transition({"state": RequestState.REJECTED}).event("rejected", APPROVER),
        NOW,
        expect=[RequestState.AWAITING_APPROVAL],
    )
    assert moved is None
    assert len(entries(store)) == 5 and check(store)[0]


def test_store_audit_appends_a_result_with_its_action_and_sha256(store: Store) -> None:
    later = NOW + timedelta(minutes=3)
    store.audit("lr-aaaaaaaa", "result", None, later, position=1, sha256="ab" * 32, size=3)
    last = entries(store)[-1]
    assert (last.seq, last.kind, last.actor) == (6, "result", None)
    assert last.action_id == f"{ACTION}-lr-aaaaaaaa"
    assert json.loads(last.detail) == {"position": 1, "sha256": "ab" * 32, "size": 3}
    assert last.at == later
    assert check(store)[0]


def test_no_link_signature_or_token_reaches_the_trail(store: Store) -> None:
    link = "https://acct.blob.core.windows.net/results/x.gz?sv=2024&sig=SECRETSIG%3D&se=2026"
    store.audit(
        "lr-aaaaaaaa",
        "result_error",
        None,
        NOW,
        reason=f"download of {link} failed; Authorization: Bearer eyJhbGciOi.abc.def",
        note="xoxb-1234-5678-abcdef",
    )
    detail = entries(store)[-1].detail
    for secret in ("SECRETSIG", "sig=", "sv=2024", "eyJhbGciOi", "xoxb-1234"):
        assert secret not in detail
    assert "https://acct.blob.core.windows.net/results/x.gz" in detail  # where, not how
    assert check(store)[0]


def test_the_app_offers_no_way_to_change_the_trail() -> None:
    audit_api = sorted(n for n in dir(Store) if "audit" in n and not n.startswith("_"))
    assert audit_api == ["audit", "audit_entries", "audit_head", "audit_last_seq"]


def test_entries_stream_in_chunks_and_filter_by_time(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    for day in range(5):
        request(store, f"lr-{day:08d}", NOW + timedelta(days=day))
    assert [e.seq for e in store.audit_entries(chunk=2)] == [1, 2, 3, 4, 5]
    window = store.audit_entries(NOW + timedelta(days=1), NOW + timedelta(days=3), chunk=1)
    assert [e.request_id for e in window] == ["lr-00000001", "lr-00000002"]
    # Another offset, the same instant.
    east = (NOW + timedelta(days=4)).astimezone(timezone(timedelta(hours=5)))
    assert [e.seq for e in store.audit_entries(since=east)] == [5]
    store.close()


# -- tampering --------------------------------------------------------------------------


def test_a_changed_detail_is_a_hash_mismatch(store: Store) -> None:
    sql(store, 'UPDATE audit_log SET detail = \'{"machine_id":"b"}\' WHERE seq = 1')
    ok, seq, problem = check(store)
    assert (ok, seq) == (False, 1) and "changed" in problem


def test_a_changed_actor_is_a_hash_mismatch(store: Store) -> None:
    sql(store, "UPDATE audit_log SET actor = 'U0EVIL001' WHERE seq = 2")
    ok, seq, problem = check(store)
    assert (ok, seq) == (False, 2) and "hash mismatch" in problem


def test_a_deleted_middle_entry_is_a_gap(store: Store) -> None:
    sql(store, "DELETE FROM audit_log WHERE seq = 3")
    ok, seq, problem = check(store)
    assert (ok, seq) == (False, 3) and "deleted" in problem


def test_a_renumbered_chain_after_a_deletion_breaks_the_links(store: Store) -> None:
    sql(store, "DELETE FROM audit_log WHERE seq = 3")
    sql(store, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 3")
    ok, seq, problem = check(store)
    assert not ok and seq == 3 and ("deleted" in problem or "changed" in problem)


@pytest.mark.parametrize("cut", [1, 2])
def test_deleted_newest_entries_no_longer_reach_the_head(store: Store, cut: int) -> None:
    sql(store, "DELETE FROM audit_log WHERE seq > :keep", keep=5 - cut)
    ok, seq, problem = check(store)
    assert (ok, seq) == (False, 6 - cut) and "newest" in problem


def test_a_forged_entry_in_the_middle_breaks_the_next_link(store: Store) -> None:
    rows = entries(store)
    sql(store, "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3")
    sql(store, "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100")
    at = NOW + timedelta(seconds=1)
    forged = entry_hash(3, at, "lr-aaaaaaaa", APPROVER, "cancelled", None, "{}", rows[1].hash)
    with store.engine.begin() as conn:
        conn.execute(
            audit_log.insert().values(
                seq=3,
                at=at,
                request_id="lr-aaaaaaaa",
                actor=APPROVER,
                kind="cancelled",
                action_id=None,
                detail="{}",
                prev_hash=rows[1].hash,
                hash=forged,
            )
        )
    ok, seq, problem = check(store)
    assert (ok, seq) == (False, 4) and "inserted" in problem


def test_a_forged_entry_past_the_head_is_found(store: Store) -> None:
    last = entries(store)[-1]
    forged = entry_hash(6, NOW, "lr-aaaaaaaa", APPROVER, "cancelled", None, "{}", last.hash)
    with store.engine.begin() as conn:
        conn.execute(
            audit_log.insert().values(
                seq=6,
                at=NOW,
                request_id="lr-aaaaaaaa",
                actor=APPROVER,
                kind="cancelled",
                detail="{}",
                prev_hash=last.hash,
                hash=forged,
            )
        )
    ok, seq, problem = check(store)
    assert (ok, seq) == (False, 6) and "past the head" in problem


def test_two_swapped_entries_are_found(store: Store) -> None:
    sql(store, "UPDATE audit_log SET seq = -1 WHERE seq = 2")
    sql(store, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    sql(store, "UPDATE audit_log SET seq = 3 WHERE seq = -1")
    ok, seq, _ = check(store)
    assert (ok, seq) == (False, 2)


def test_a_changed_head_is_found(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(audit_head.update().values(hash="f" * 64))
    ok, seq, problem = check(store)
    assert (ok, seq) == (False, 5) and "head" in problem


def test_verify_of_nothing() -> None:
    assert verify([], AuditHead(0, GENESIS)).ok
    missing = verify([], None)
    assert not missing.ok and "head" in (missing.problem or "")


# -- export -----------------------------------------------------------------------------


def test_export_jsonl_and_csv_carry_the_hashed_fields(store: Store) -> None:
    out = io.StringIO()
    assert export_rows(store.audit_entries(), "jsonl", out) == 5
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["kind"] for r in records][:2] == ["requested", "approved"]
    prev = GENESIS
    for r in records:  # an export can be checked on its own
        at = datetime.fromisoformat(r["at"])
        assert r["hash"] == entry_hash(
            r["seq"], at, r["request_id"], r["actor"], r["kind"], r["action_id"], r["detail"], prev
        )
        prev = r["hash"]

    out = io.StringIO()
    export_rows(store.audit_entries(), "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == [
        "seq", "at", "request_id", "actor", "kind", "action_id", "detail", "prev_hash", "hash",
    ]  # fmt: skip
    assert [r["hash"] for r in rows] == [r["hash"] for r in records]
    assert rows[0]["actor"] == REQUESTER and rows[2]["actor"] == ""


# -- concurrency ------------------------------------------------------------------------


def test_concurrent_writers_keep_one_contiguous_chain(tmp_path: Path) -> None:
    """Threads, each with its own engine on one SQLite file (as replicas would be)."""
    writers, per_writer = 4, 3
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        store = new_store(tmp_path)
        try:
            start.wait(timeout=30)
            for i in range(per_writer):
                request_id = f"lr-{n:04d}{i:04d}"
                request(store, request_id)
                run_to_end(store, request_id)
                store.audit(request_id, "result", None, NOW, position=1, sha256="0" * 64)
        except BaseException as exc:  # noqa: BLE001 - a thread's failure is the test's
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a writer did not finish within 120 s"
    assert not errors, errors
    store = new_store(tmp_path)
    rows = entries(store)
    total = writers * per_writer * 6
    assert [r.seq for r in rows] == list(range(1, total + 1))
    result = verify(rows, store.audit_head())
    assert result.ok and result.entries == total, result.problem
    store.close()


# -- checking a live store --------------------------------------------------------------


def test_verify_store_finds_an_entry_past_the_head(store: Store) -> None:
    last = entries(store)[-1]
    forged = entry_hash(6, NOW, None, APPROVER, "cancelled", None, "{}", last.hash)
    with store.engine.begin() as conn:
        conn.execute(
            audit_log.insert().values(
                seq=6, at=NOW, actor=APPROVER, kind="cancelled", detail="{}",
                prev_hash=last.hash, hash=forged,
            )
        )  # fmt: skip
    result = verify_store(store)
    assert (result.ok, result.bad_seq, result.entries) == (False, 6, 5)
    assert "past the head" in (result.problem or "")


def test_verify_store_while_the_bot_appends_is_never_a_false_break(tmp_path: Path) -> None:
    """One writer appends as fast as it can; every check meanwhile finds the chain intact."""
    store = new_store(tmp_path)
    request(store, "lr-aaaaaaaa")
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        writer = new_store(tmp_path)
        try:
            for n in range(300):
                writer.audit("lr-aaaaaaaa", "result", None, NOW, position=n)
        except BaseException as exc:  # noqa: BLE001 - a thread's failure is the test's
            errors.append(exc)
        finally:
            writer.close()
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    checks = []
    while not done.is_set():
        checks.append(verify_store(store))
    thread.join(timeout=60)
    assert not thread.is_alive() and not errors, errors
    assert checks and all(c.ok for c in checks), [c.problem for c in checks if not c.ok]
    assert verify_store(store).entries == 301
    store.close()
