"""``lrbot demo``: the README's first command must work, offline, and tell the story."""

from __future__ import annotations

import io

import pytest

from bot.demo import run_demo


def test_demo_runs_a_request_to_its_results_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # nothing written where it is started from
    out = io.StringIO()
    assert run_demo(out=out, time_scale=20.0, timeout=60) == 0
    transcript = out.getvalue()
    for line in [
        "only Ana (analyst) sees: You asked for this run, so you cannot approve it",
        "Approved by @Lee",
        "Submitted to Defender as action",
        "Command 1 of 3 (putfile procdump64.exe): Completed",
        "exited with code 0",
        "uploaded triage.zip",
        "Succeeded",
        "1 file(s) uploaded",
        # then the playbook, expanded in full and preflighted before Lee approves it
        "/liveresponse ws-010 playbook collect-triage case=IR-2026-0142",
        "*Playbook* `collect-triage` (case=IR-2026-0142)",
        "runscript collect-triage.ps1 -Case IR-2026-0142",
        "*Preflight*",
        "playbook request",
        # and last a batch: one approval, a run per device, the summary
        "clicks Approve all",
        "Batch finished: 3 of 3 devices succeeded",
    ]:
        assert line in transcript
    assert transcript.rstrip().endswith("batch of 3 devices ended; 3 file(s) uploaded")
    assert "sig=" not in transcript and "/blob/" not in transcript


def test_batch_demo_runs_three_devices_under_one_approval_to_its_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.demo_batch import run_batch_demo

    monkeypatch.chdir("/")
    out = io.StringIO()
    assert run_batch_demo(out=out, time_scale=20.0, timeout=60) == 0
    transcript = out.getvalue()
    for line in [
        "Batch live response request",
        "[ws-001.contoso.com]",
        "[ws-010.contoso.com]",
        "[ws-011.contoso.com]",
        "Batch finished: 3 of 3 devices succeeded",
        "batch of 3 devices ended; 3 file(s) uploaded",
    ]:
        assert line in transcript
    assert "sig=" not in transcript and "/blob/" not in transcript
