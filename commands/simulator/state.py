"""The simulated tenant: machines, library, actions, tokens, limits and result blobs.

Pure of HTTP: every public method takes plain values, returns JSON-ready values and
raises ``SimError`` / ``OAuthError`` for refusals. One lock guards everything; progress
is computed from the clock on each read (see ``timeline``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from commands.simulator.admission import admit
from commands.simulator.auth import TokenStore, check_client, check_consent, token_claims
from commands.simulator.clock import Clock
from commands.simulator.errors import SimError
from commands.simulator.library import Blob, BlobStore, Library
from commands.simulator.limits import SlidingWindow, format_retry_after
from commands.simulator.planning import plan_commands
from commands.simulator.query import Page, select
from commands.simulator.render import (
    ACTION_FIELDS,
    MACHINE_FIELDS,
    action_fields,
    action_json,
    machine_fields,
    machine_json,
)
from commands.simulator.scenario import Scenario, SimMachine
from commands.simulator.timeline import ActionRecord, ActionView, Timing, first_online, project
from commands.simulator.validation import parse_run_request

__all__ = ["SimState"]


@dataclass
class _Machine:
    spec: SimMachine
    history: list[tuple[float, bool]]  # (since when, online), oldest first
    offline_since: float

    @property
    def online(self) -> bool:
        return self.history[-1][1]


class SimState:
    """Everything the simulated Defender knows; thread-safe."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self._lock = threading.RLock()
        now = clock.now()
        self._machines = {
            m.id: _Machine(m, [(float("-inf"), m.health_status == "Active")], now - 2 * 86400)
            for m in scenario.machines
        }
        self._library = Library(scenario.library, now)
        self._actions: dict[str, ActionRecord] = {}
        self._tokens = TokenStore()
        self._blobs = BlobStore()
        self._runs = SlidingWindow(scenario.runs_per_minute, 60)
        self._api = (
            SlidingWindow(scenario.api_calls_per_minute, 60),
            SlidingWindow(scenario.api_calls_per_hour, 3600),
        )
        self._timing = Timing(scenario.pending_seconds, scenario.queue_seconds)

    # --- identity and budgets ---------------------------------------------------------------

    def issue_token(self, form: Mapping[str, str], token_url: str) -> dict[str, Any]:
        """Answer a token request (``expires_in`` in real seconds), or raise ``OAuthError``."""
        wall = time.time()
        check_client(form, self.scenario, token_url, wall)
        check_consent(self.scenario, form["scope"])
        lifetime = self.scenario.token_lifetime_seconds
        real = max(1, round(lifetime / self.clock.scale))
        claims = token_claims(self.scenario, form["scope"], wall, real)
        with self._lock:
            token = self._tokens.issue(self.clock.now(), lifetime, claims)
        return {
            "token_type": "Bearer",
            "expires_in": real,
            "ext_expires_in": real,
            "access_token": token,
        }

    def authorize(self, authorization: str | None) -> None:
        """Refuse (401) a request without a valid, unexpired bearer token."""
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            if scheme.lower() == "bearer" and self._tokens.valid(token.strip(), self.clock.now()):
                return
        if not authorization:
            raise SimError(401, "Unauthorized", "The Authorization header is missing.")
        raise SimError(401, "Unauthorized", "The access token is invalid or has expired.")

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.expire_all(self.clock.now())

    def _throttle(self, windows: tuple[SlidingWindow, ...], what: str) -> None:
        now = self.clock.now()
        wait = max(window.wait(now) for window in windows)
        if wait > 0:
            retry = format_retry_after(wait, self.clock.scale)
            raise SimError(
                429, "TooManyRequests", f"{what}; retry after {retry} seconds.", retry_after=retry
            )
        for window in windows:
            window.add(now)

    def charge_api_call(self) -> None:
        """Count a call against the non-run budget (per minute and per hour), or 429."""
        with self._lock:
            self._throttle(self._api, "API calls rate limit exceeded")

    # --- machines ---------------------------------------------------------------------------

    def _machine(self, machine_id: str) -> _Machine:
        machine = self._machines.get(machine_id.lower())
        if machine is None:
            raise SimError(404, "ResourceNotFound", f"Machine {machine_id} was not found.")
        return machine

    def _machine_json(self, machine: _Machine, now: float) -> dict[str, Any]:
        if machine.online:
            return machine_json(machine.spec, "Active", now - 30)
        health = machine.spec.health_status
        return machine_json(
            machine.spec, "Inactive" if health == "Active" else health, machine.offline_since
        )

    def get_machine(self, machine_id: str) -> dict[str, Any]:
        with self._lock:
            return self._machine_json(self._machine(machine_id), self.clock.now())

    def list_machines(self, query: Mapping[str, str]) -> Page:
        with self._lock:
            now = self.clock.now()
            items = [self._machine_json(m, now) for m in self._machines.values()]
        pairs = [(item, machine_fields(item)) for item in items]
        return select(pairs, query, MACHINE_FIELDS, self.scenario.page_size)

    def machines_by_tag(self, tag: str, starts_with: bool = False) -> list[dict[str, Any]]:
        """``findbytag``: machines carrying ``tag`` (Defender compares tags case-insensitively)."""
        wanted = tag.lower()
        with self._lock:
            now = self.clock.now()
            return [
                self._machine_json(m, now)
                for m in self._machines.values()
                if any(
                    t.lower().startswith(wanted) if starts_with else t.lower() == wanted
                    for t in m.spec.machine_tags
                )
            ]

    def set_online(self, machine_id: str, online: bool) -> None:
        """Bring a machine online (queued actions start) or take it offline."""
        with self._lock:
            machine = self._machine(machine_id)
            now = self.clock.now()
            if machine.online and not online:
                machine.offline_since = now
            machine.history.append((now, online))

    # --- actions ----------------------------------------------------------------------------

    def _view(self, record: ActionRecord, now: float) -> ActionView:
        online_at = first_online(self._machines[record.machine_id].history, record.created)
        return project(record, online_at, self._timing, now)

    def _action(self, action_id: str) -> ActionRecord:
        record = self._actions.get(action_id.lower())
        if record is None:
            raise SimError(404, "ResourceNotFound", f"Machine action {action_id} was not found.")
        return record

    def _active(self, now: float) -> list[tuple[str, float]]:
        views = ((r, self._view(r, now)) for r in self._actions.values())
        return [(r.machine_id, v.ends_at or now) for r, v in views if not v.is_final]

    def run(self, machine_id: str, body: Any) -> dict[str, Any]:
        """Create a live response action (the 201 body, ``commands`` empty), or raise."""
        with self._lock:
            self._throttle((self._runs,), "Live response calls rate limit exceeded")
            now = self.clock.now()
            machine = self._machine(machine_id).spec
            request = parse_run_request(body)
            scenario = self.scenario
            active = self._active(now)
            admit(
                machine,
                request,
                self._library,
                active,
                scenario.max_sessions,
                now,
                self.clock.scale,
            )
            record = ActionRecord(
                id=str(uuid.uuid4()),
                machine_id=machine.id,
                computer_dns_name=machine.computer_dns_name,
                requestor=scenario.client_id,
                comment=request.comment,
                created=now,
                plans=plan_commands(request.commands, machine, scenario),
            )
            self._actions[record.id] = record
            return action_json(record, self._view(record, now), with_commands=False)

    def get_action(self, action_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._action(action_id)
            return action_json(record, self._view(record, self.clock.now()))

    def list_actions(self, query: Mapping[str, str]) -> Page:
        with self._lock:
            now = self.clock.now()
            views = [(r, self._view(r, now)) for r in self._actions.values()]
        pairs = [(action_json(r, v), action_fields(r, v)) for r, v in views]
        return select(pairs, query, ACTION_FIELDS, self.scenario.page_size)

    def cancel(self, action_id: str, body: Any) -> dict[str, Any]:
        """Cancel a Pending or InProgress action; 400 when it is already final."""
        with self._lock:
            record = self._action(action_id)
            comment = body.get("Comment") if isinstance(body, dict) else None
            if not isinstance(comment, str):
                raise SimError(400, "MissingRequiredParameter", "'Comment' is required.")
            now = self.clock.now()
            view = self._view(record, now)
            if view.is_final:
                message = f"Action {record.id} is already {view.status} and cannot be cancelled."
                raise SimError(400, "BadRequest", message)
            record.cancelled_at = now
            record.cancellation_requestor = self.scenario.client_id
            record.cancellation_comment = comment
            return action_json(record, self._view(record, now))

    def actions(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self.clock.now()
            return [action_json(r, self._view(r, now)) for r in self._actions.values()]

    # --- results and library ----------------------------------------------------------------

    def download_link(self, action_id: str, index: int, base_url: str) -> dict[str, Any]:
        """A fresh link to a completed RunScript or GetFile result; 400 for anything else."""
        with self._lock:
            record = self._action(action_id)
            now = self.clock.now()
            if not 0 <= index < len(record.plans):
                message = f"Action {record.id} has no command with index {index}."
                raise SimError(400, "InvalidInput", message)
            plan, command = record.plans[index], self._view(record, now).commands[index]
            if plan.type == "PutFile":
                raise SimError(
                    400, "InvalidInput", f"Command {index} is a PutFile: it has no result."
                )
            if command.status != "Completed" or plan.result is None:
                message = f"Command {index} is {command.status}: it has no result to download."
                raise SimError(400, "BadRequest", message)
            link = self._blobs.publish(plan.result, base_url, now, self.scenario.link_seconds)
        return {"@odata.context": f"{base_url}/api/$metadata#Edm.String", "value": link}

    def blob(self, name: str, signature: str | None) -> Blob | None:
        """The blob behind a link if its signature matches (the caller checks expiry)."""
        with self._lock:
            return self._blobs.get(name, signature)

    def list_library(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._library.wire()

    def delete_library_file(self, name: str) -> bool:
        with self._lock:
            return self._library.delete(name)

    def replace_library_file(
        self, name: str, content: bytes, description: str | None = None
    ) -> None:
        """Upload ``name`` as OverrideIfExists would: same name, new content and sha256."""
        with self._lock:
            self._library.replace(name, content, description, self.clock.now())
