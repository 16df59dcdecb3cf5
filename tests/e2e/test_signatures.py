"""Signatures on the real HTTP endpoint: anything not signed by Slack, now, is refused (401).

Bolt's ``RequestVerification`` (slack_sdk's ``SignatureVerifier``) checks
``v0=HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")`` and refuses a timestamp more than
300 s from now in either direction; a missing timestamp counts as 0 (stale) and a missing
signature as "" (no match). Slack sends no nonce: a correctly signed request replayed within
those 5 minutes is accepted by Bolt (the lifecycle's atomic transitions make a replayed click
harmless); later, its own timestamp makes it stale. A timestamp that is not a number made
``SignatureVerifier`` raise ``ValueError`` and Bolt answer 500; ``bot.inbound`` refuses it first.

Each refusal must leave no trace: no Slack Web API call, no response_url post, no stored
request, no Defender lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.records import RequestState
from bot.sandbox.slack_requests import SignedRequest, Signing
from tests.helpers.bot import CHANNEL, REQUESTER, BotHarness, running_bot

pytestmark = pytest.mark.usefixtures("no_errors_logged")

SIGNED = Signing()
TEXT = "ws-001.contoso.com getfile C:\\Temp\\a.txt"


def slash(bot: BotHarness, signing: Signing = SIGNED) -> SignedRequest:
    return bot.send.build_slash_command(
        TEXT, user_id=REQUESTER, channel_id=CHANNEL, signing=signing
    )


def signed_at(
    bot: BotHarness, body: bytes, timestamp: str, secret: str | None = None
) -> SignedRequest:
    """``body`` signed correctly (with ``secret``, else the bot's) at ``timestamp``."""
    signature = SignatureVerifier(secret or bot.secret).generate_signature(
        timestamp=timestamp, body=body
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": str(signature),
    }
    return SignedRequest(body, headers)


def without(request: SignedRequest, header: str) -> SignedRequest:
    return SignedRequest(request.body, {k: v for k, v in request.headers.items() if k != header})


def tampered(bot: BotHarness) -> SignedRequest:
    """A valid signature, of a different body (another user's command)."""
    genuine = slash(bot)
    other = bot.send.build_slash_command(TEXT, user_id="U0OTHER01", channel_id=CHANNEL)
    return SignedRequest(other.body, genuine.headers)


def wrong_secret(bot: BotHarness) -> SignedRequest:
    return slash(bot, Signing(secret="not-the-signing-secret"))


def no_signature(bot: BotHarness) -> SignedRequest:
    return without(slash(bot), "X-Slack-Signature")


def no_timestamp(bot: BotHarness) -> SignedRequest:
    return without(slash(bot), "X-Slack-Request-Timestamp")


def no_headers(bot: BotHarness) -> SignedRequest:
    return without(no_signature(bot), "X-Slack-Request-Timestamp")


def stale(bot: BotHarness) -> SignedRequest:
    """Correctly signed with its own timestamp, which is 5 min 10 s old."""
    return slash(bot, Signing(age=310))


def far_future(bot: BotHarness) -> SignedRequest:
    return slash(bot, Signing(age=-310))


def replayed(bot: BotHarness) -> SignedRequest:
    """A request Slack really sent 6 minutes ago, captured and sent again byte for byte."""
    captured = slash(bot)
    return signed_at(bot, captured.body, str(int(time.time()) - 360))


def non_numeric(bot: BotHarness) -> SignedRequest:
    return signed_at(bot, slash(bot).body, "yesterday")


def float_timestamp(bot: BotHarness) -> SignedRequest:
    return signed_at(bot, slash(bot).body, f"{time.time():.3f}")


def huge_timestamp(bot: BotHarness) -> SignedRequest:
    return signed_at(bot, slash(bot).body, "9" * 5000)


def empty_signature(bot: BotHarness) -> SignedRequest:
    request = slash(bot)
    return SignedRequest(request.body, {**request.headers, "X-Slack-Signature": "v0="})


def other_version(bot: BotHarness) -> SignedRequest:
    request = slash(bot)
    signature = request.headers["X-Slack-Signature"].replace("v0=", "v1=", 1)
    return SignedRequest(request.body, {**request.headers, "X-Slack-Signature": signature})


FORGERIES: dict[str, Callable[[BotHarness], SignedRequest]] = {
    "tampered body": tampered,
    "wrong secret": wrong_secret,
    "no signature": no_signature,
    "no timestamp": no_timestamp,
    "no headers": no_headers,
    "stale timestamp": stale,
    "far-future timestamp": far_future,
    "replayed after 6 min": replayed,
    "non-numeric timestamp": non_numeric,
    "fractional timestamp": float_timestamp,
    "5000-digit timestamp": huge_timestamp,
    "empty signature": empty_signature,
    "v1 signature": other_version,
}


def assert_nothing_happened(bot: BotHarness, calls_before: int) -> None:
    assert len(bot.slack.calls()) == calls_before, [c.method for c in bot.slack.calls()]
    assert bot.slack.response_posts() == []
    assert bot.slack.views() == []
    assert bot.slack.messages(CHANNEL) == []
    assert bot.store_runtime.store.in_states(list(RequestState)) == []
    assert bot.defender.api_requests() == []


def test_every_forgery_is_refused_with_401_and_without_effect(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        calls_before = len(bot.slack.calls())  # Bolt's auth.test when the app was built
        for name, forge in FORGERIES.items():
            answer = bot.send.send(forge(bot))
            assert answer.status_code == 401, (name, answer.status_code, answer.text)
        # A request that slipped through would have queued work: let it run before looking.
        assert httpx.get(bot.server.url.replace("/slack/events", "/healthz")).status_code == 200  # type: ignore[union-attr]
        bot.store_runtime.tracker.wake()
        bot.wait(lambda: bot.settled(), "the outbox to settle")
        assert_nothing_happened(bot, calls_before)

        # The positive control: the same request, correctly signed now, opens the modal.
        assert bot.send.send(slash(bot)).status_code == 200
        bot.wait(lambda: bot.slack.views(), "the request modal")


def test_a_replay_within_five_minutes_passes_the_signature_but_opens_nothing(
    tmp_path: Path,
) -> None:
    """Documented behaviour: Slack sends no nonce, so within the window a replay is a valid
    request to Bolt. Its trigger_id was used already: Slack refuses a second form, and the
    bot (which once failed the listener here) says so instead of crashing."""
    with running_bot(tmp_path) as bot:
        captured = slash(bot)
        assert bot.send.send(captured).status_code == 200
        bot.wait(lambda: bot.slack.views(), "the request modal")
        assert bot.send.send(captured).status_code == 200
        post = bot.wait(lambda: bot.slack.response_posts(), "the answer to the replay")[0]
        assert "did not open the request form (expired_trigger_id)" in str(post.body)
        assert len(bot.slack.views()) == 1
        assert bot.store_runtime.store.in_states(list(RequestState)) == []
