"""The Defender for Endpoint API client for live response.

Reads (GET) are retried on 5xx, on short 429s and on transport errors, with full-jitter
backoff through the injected ``sleep``. Writes (run, cancel) are never repeated: once a
POST may have reached Defender, a lost answer or a 5xx raises ``OutcomeUnknown`` and the
caller reconciles (``actions_for_machine``) before it ever sends the request again.

With a ``CallBudget``, every request to a non-run endpoint (each GET attempt, each page,
each result link, and cancel) first takes a call from it; ``runliveresponse`` has its own
limit and the result download goes to storage, not to the API, so neither is counted.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from commands import odata
from commands.auth import DefenderAuth, MsalTokenProvider, TokenProvider
from commands.budget import CallBudget, Priority
from commands.config import DefenderSettings
from commands.download import RetryableDownload, download_client, fetch_result
from commands.errors import (
    ApiError,
    DefenderError,
    OutcomeUnknown,
    ResultError,
    TransportError,
    api_error,
)
from commands.lookup import normalise_host, pick_machine
from commands.models import CommandSequence
from commands.results import DownloadedResult, parse_runscript_output
from commands.retry import backoff_seconds, is_retryable_status, is_server_error
from commands.retry import retry_after_seconds as _retry_after
from commands.wire import ACTIVE_STATUSES, LibraryFile, Machine, MachineAction, RunScriptOutput

__all__ = [
    "DEFAULT_THROTTLE_SECONDS",
    "USER_AGENT",
    "CallObserver",
    "DefenderClient",
    "endpoint_of",
]

logger = logging.getLogger(__name__)

USER_AGENT = "lrbot/0.1"
DEFAULT_THROTTLE_SECONDS = 60.0  # a 429 without Retry-After: Defender's limits are per minute
_ACTIONS = "/api/machineactions"
_LIVE_RESPONSE = "type eq 'LiveResponse'"
MAX_PAGES = 1000  # 100,000 items at Defender's page size of 100: more than any tenant's
# Raised before any byte of the request left: safe to report as "not sent".
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_Model = TypeVar("_Model", bound=BaseModel)
# Told of every API call's outcome: (method, endpoint, HTTP status, or None without an answer).
CallObserver = Callable[[str, str, int | None], None]


def endpoint_of(path: str) -> str:
    """A path with its ids replaced, for counting calls by endpoint (few distinct values):
    ``/api/machineactions/{id}/GetLiveResponseResultDownloadLink``."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[1:]
    named = ["{id}" if i % 2 else _known(part.split("(", 1)[0]) for i, part in enumerate(parts[:3])]
    return "/api/" + "/".join(named) + ("/…" if len(parts) > 3 else "")


_ENDPOINT_NAMES = frozenset(
    {
        "machines",
        "machineactions",
        "libraryfiles",
        "runliveresponse",
        "cancel",
        "GetLiveResponseResultDownloadLink",
    }
)


def _known(name: str) -> str:
    """A name the bot calls, or ``other`` (a next link's path is Defender's to choose)."""
    return name if name in _ENDPOINT_NAMES else "other"


def _segment(value: str) -> str:
    return quote(value, safe="")


def _error_fields(response: httpx.Response) -> tuple[str, str, str | None]:
    """Defender's ``{"error": {"code", "message", "target"}}``, tolerating anything else."""
    fallback = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = _decode(response)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code") or fallback.replace(" ", "")
    message = error.get("message") or fallback
    target = error.get("target")
    return str(code), str(message), str(target) if target is not None else None


def _decode(response: httpx.Response) -> Any:
    """The body as JSON; ``ValueError`` for anything else, deep nesting included (json.loads
    raises ``RecursionError`` on ``[[[[…``, which no caller expected from a bad answer)."""
    try:
        return response.json()
    except RecursionError:
        raise ValueError("the answer nests too deeply") from None


def _model(cls: type[_Model], data: Any, what: str) -> _Model:
    try:
        return cls.model_validate(data)
    except ValidationError:
        raise DefenderError(f"Defender's answer to {what} is not a {cls.__name__}") from None


class DefenderClient:
    """Live response operations over one ``httpx.Client``; use as a context manager."""

    def __init__(
        self,
        settings: DefenderSettings,
        *,
        token_provider: TokenProvider | None = None,
        transport: httpx.BaseTransport | None = None,
        download_transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_get_retries: int = 3,
        max_throttle_wait_seconds: float = 60.0,
        rng: random.Random | None = None,
        budget: CallBudget | None = None,
        priority: Priority = Priority.BACKGROUND,
        max_budget_wait_seconds: float = 30.0,
        interactive_budget_wait_seconds: float = 1.5,
    ) -> None:
        provider = token_provider or MsalTokenProvider(settings)
        timeout = httpx.Timeout(settings.timeout_seconds)
        self._http = httpx.Client(
            base_url=settings.api_url,
            auth=DefenderAuth(provider),
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        # Result links are pre-signed: never send them an Authorization header.
        self._download = download_client(timeout, USER_AGENT, download_transport)
        self._origin = httpx.URL(settings.api_url).copy_with(path="/", query=None)
        self._sleep = sleep
        self._max_get_retries = max_get_retries
        self._max_throttle_wait = max_throttle_wait_seconds
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._budget = budget
        self._priority = priority
        # The longest one run submission can take: httpx applies the timeout to each of
        # pool, connect, write and read, and a token may have to be fetched first.
        self.submit_bound_seconds = 5 * settings.timeout_seconds + 5
        self._max_budget_wait = max_budget_wait_seconds
        self._interactive_budget_wait = interactive_budget_wait_seconds
        self._owns_http = True
        self._observers: list[CallObserver] = []  # shared with ``interactive()`` views

    def __enter__(self) -> DefenderClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close both HTTP clients; a view from ``interactive()`` closes nothing."""
        if self._owns_http:
            self._http.close()
            self._download.close()

    @property
    def budget(self) -> CallBudget | None:
        """The call budget this client spends from, if any (shared with its views)."""
        return self._budget

    def interactive(self) -> DefenderClient:
        """This client for calls a person waits on: the budget's interactive reserve and a
        short wait for it (Slack gives 3 s). Connections, tokens and budget are shared."""
        view = copy.copy(self)
        view._priority = Priority.INTERACTIVE
        view._max_budget_wait = self._interactive_budget_wait
        view._owns_http = False
        return view

    def observe(self, observer: CallObserver) -> None:
        """Tell ``observer`` of every API call's outcome (metrics, health)."""
        self._observers.append(observer)

    # --- plumbing ---------------------------------------------------------------------

    def _told(self, method: str, path: str, status: int | None) -> None:
        endpoint = endpoint_of(path)
        for observer in self._observers:
            try:
                observer(method, endpoint, status)
            except Exception:  # an observer's failure must not fail the call
                logger.exception("a call observer failed")

    def _spend(self) -> None:
        """Take one call from the budget (if any) before a request to a non-run endpoint."""
        if self._budget is not None:
            self._budget.acquire(self._priority, max_wait=self._max_budget_wait, sleep=self._sleep)

    def _log(self, response: httpx.Response) -> None:
        request = response.request
        self._told(request.method, request.url.path, response.status_code)
        status = response.status_code
        if response.is_success:
            level = logging.DEBUG
        elif status in (401, 403) or status >= 500:
            level = logging.WARNING  # credentials, permissions, or Defender failing
        else:
            # A lookup that found nothing, a busy device, a 429 waited out: the caller says
            # what it means, at the level it means (metrics count every status).
            level = logging.INFO
        target = None if response.is_success else _error_fields(response)[2]
        logger.log(
            level,
            "%s %s -> %s target=%s",
            request.method,
            request.url.path,
            response.status_code,
            target,
        )

    def _error(self, response: httpx.Response) -> ApiError:
        code, message, target = _error_fields(response)
        wait = _retry_after(response.headers, DEFAULT_THROTTLE_SECONDS)
        return api_error(response.status_code, code, message, target, wait)

    def _backoff(self, attempt: int) -> float:
        return backoff_seconds(attempt, rng=self._rng)

    def _get_wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before repeating a GET that failed this way, or None: do not."""
        if attempt >= self._max_get_retries or not is_retryable_status(response.status_code):
            return None
        backoff = self._backoff(attempt)
        if response.status_code == 429:
            wait = _retry_after(response.headers, backoff)
            return wait if wait <= self._max_throttle_wait else None
        return max(backoff, min(_retry_after(response.headers, 0.0), self._max_throttle_wait))

    def _get(self, url: str, params: dict[str, str] | None = None) -> Any:
        """GET and decode JSON, retrying what is safe to retry."""
        attempt = 0
        while True:
            self._spend()
            try:
                response = self._http.get(url, params=params)
            except httpx.InvalidURL as exc:  # a huge query, or a next link that is no URL
                path = url.split("?", 1)[0][:200]
                raise DefenderError(f"GET {path}: the request URL is invalid ({exc})") from None
            except httpx.TransportError as exc:
                self._told("GET", httpx.URL(url).path, None)
                if attempt >= self._max_get_retries:
                    path = httpx.URL(url).path
                    raise TransportError(f"GET {path}: {type(exc).__name__}") from exc
                logger.info("GET %s: %s; retrying", httpx.URL(url).path, type(exc).__name__)
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            self._log(response)
            if response.is_success:
                return self._json(response)
            wait = self._get_wait(response, attempt)
            if wait is None:
                raise self._error(response)
            self._sleep(wait)
            attempt += 1

    def _json(self, response: httpx.Response) -> Any:
        try:
            return _decode(response)
        except ValueError:
            path = response.request.url.path
            raise DefenderError(f"Defender's answer to {path} is not JSON") from None

    def _post(
        self, path: str, body: dict[str, Any], operation: str, *, budgeted: bool = True
    ) -> Any:
        """POST once; never repeated once it may have been received."""
        if budgeted:
            self._spend()
        try:
            response = self._http.post(path, json=body)
        except _NOT_SENT as exc:
            self._told("POST", path, None)
            raise TransportError(f"{operation}: not sent ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            self._told("POST", path, None)
            raise OutcomeUnknown(operation, type(exc).__name__) from exc
        self._log(response)
        if not response.is_success:
            error = self._error(response)
            if is_server_error(response.status_code):
                raise OutcomeUnknown(operation, str(error)) from error
            raise error
        try:
            return _decode(response)
        except ValueError:
            raise OutcomeUnknown(operation, "the answer is not JSON") from None

    def _on_our_host(self, link: str) -> str:
        """A next-page link, sent to our own API host whatever host it names: never elsewhere."""
        url = httpx.URL(link)
        if url.is_relative_url or url.copy_with(path="/", query=None) == self._origin:
            return link
        logger.debug("next page link names another host; asking %s instead", self._origin)
        return url.raw_path.decode("ascii")

    def _pages(self, path: str, params: dict[str, str] | None = None) -> Iterator[Any]:
        """Every item of a collection, following ``@odata.nextLink`` (on our host only)."""
        page = self._get(path, params)
        seen: set[str] = set()
        while True:
            values = page.get("value") if isinstance(page, dict) else None
            if not isinstance(values, list):
                raise DefenderError(f"Defender's answer to {path} is not a collection")
            yield from values
            link = page.get("@odata.nextLink")
            if not link:
                return
            # A next link back to a page already read (or an endless chain) would keep a
            # poll, or an analyst's lookup, asking for ever.
            if not isinstance(link, str) or link in seen or len(seen) >= MAX_PAGES:
                raise DefenderError(f"Defender's answer to {path} has a broken next page link")
            seen.add(link)
            try:
                next_url = self._on_our_host(link)
            except httpx.InvalidURL:
                raise DefenderError(
                    f"Defender's answer to {path} has an invalid next link"
                ) from None
            page = self._get(next_url)

    # --- machines ---------------------------------------------------------------------

    def get_machine(self, machine_id: str) -> Machine:
        """One machine by its id."""
        data = self._get(f"/api/machines/{_segment(machine_id)}")
        return _model(Machine, data, "get machine")

    def sample_machines(self, top: int = 1) -> list[Machine]:
        """The first ``top`` machines (one page, no more): does the machines endpoint answer?"""
        page = self._get("/api/machines", {"$top": str(top)})
        values = page.get("value") if isinstance(page, dict) else None
        if not isinstance(values, list):
            raise DefenderError("Defender's answer to list machines has no value list")
        return [_model(Machine, m, "list machines") for m in values[:top]]

    def find_machines_by_name(self, name: str) -> list[Machine]:
        """Machines whose DNS name starts with ``name`` (compared in lower case)."""
        where = f"startswith(computerDnsName,{odata.literal(normalise_host(name))})"
        return [
            _model(Machine, m, "find machines")
            for m in self._pages("/api/machines", {"$filter": where})
        ]

    def machines_by_tag(self, tag: str) -> list[Machine]:
        """Machines carrying the Defender tag ``tag`` exactly (``findbytag``)."""
        params = {"tag": tag, "useStartsWithFilter": "false"}
        return [
            _model(Machine, m, "find machines by tag")
            for m in self._pages("/api/machines/findbytag", params)
        ]

    def resolve_machine(self, query: str) -> Machine:
        """The machine a 40-hex id or a host name means (see ``commands.lookup.pick_machine``)."""
        text = query.strip()
        if len(text) == 40 and all(c in "0123456789abcdefABCDEF" for c in text):
            return self.get_machine(text.lower())
        if not normalise_host(text):
            return pick_machine(query, [])
        return pick_machine(query, self.find_machines_by_name(text))

    # --- actions ----------------------------------------------------------------------

    def run_live_response(
        self, machine_id: str, sequence: CommandSequence, comment: str
    ) -> MachineAction:
        """Start a live response action; never retried (see ``OutcomeUnknown``)."""
        path = f"/api/machines/{_segment(machine_id)}/runliveresponse"
        # Its own limit (10 a minute), which the tracker keeps: not the non-run budget.
        data = self._post(path, sequence.to_request(comment), "run live response", budgeted=False)
        try:
            return MachineAction.model_validate(data)
        except ValidationError:
            raise OutcomeUnknown("run live response", "the answer is not an action") from None

    def cancel_action(self, action_id: str, comment: str) -> MachineAction:
        """Ask Defender to cancel a pending or running action; never retried."""
        path = f"{_ACTIONS}/{_segment(action_id)}/cancel"
        data = self._post(path, {"Comment": comment}, "cancel action")
        try:
            return MachineAction.model_validate(data)
        except ValidationError:
            raise OutcomeUnknown("cancel action", "the answer is not an action") from None

    def get_action(self, action_id: str) -> MachineAction:
        """One machine action by its id."""
        return _model(MachineAction, self._get(f"{_ACTIONS}/{_segment(action_id)}"), "get action")

    def list_actions(self, filter: str, top: int | None = None) -> list[MachineAction]:
        """Machine actions matching an OData ``$filter``, all pages (at most ``top``)."""
        params = {"$filter": filter}
        if top is not None:
            params["$top"] = str(top)
        actions: list[MachineAction] = []
        for item in self._pages(_ACTIONS, params):
            actions.append(_model(MachineAction, item, "list actions"))
            if top is not None and len(actions) >= top:
                break
        return actions

    def get_actions(self, ids: Iterable[str]) -> dict[str, MachineAction]:
        """Many actions by id in few calls: ``id eq … or …`` filters, each URL under the bound."""
        wanted = list(dict.fromkeys(ids))
        prefix = len(str(self._http.base_url).rstrip("/")) + len(f"{_ACTIONS}?%24filter=")
        found: dict[str, MachineAction] = {}
        for where in odata.chunk_any_of("id", wanted, odata.MAX_URL_LENGTH - prefix):
            for item in self._pages(_ACTIONS, {"$filter": where}):
                # One action Defender describes badly must not stop the poll of all the
                # others: it is left out (its run waits and is looked at again next poll).
                try:
                    action = MachineAction.model_validate(item)
                except ValidationError:
                    shown = item.get("id") if isinstance(item, dict) else None
                    logger.warning("poll: Defender's answer for action %r is unreadable", shown)
                    continue
                if action.id in wanted:
                    found[action.id] = action
        return found

    def actions_for_machine(
        self, machine_id: str, since: datetime | None = None
    ) -> list[MachineAction]:
        """The machine's live response actions (created at or after ``since``), for reconciling."""
        where = f"machineId eq {odata.literal(machine_id)} and {_LIVE_RESPONSE}"
        if since is not None:
            where += f" and creationDateTimeUtc ge {odata.datetime_literal(since)}"
        return self.list_actions(where)

    def active_action(self, machine_id: str) -> MachineAction | None:
        """The machine's pending or running live response action, if any (the newest)."""
        where = (
            f"machineId eq {odata.literal(machine_id)} and"
            " (status eq 'Pending' or status eq 'InProgress')"
        )
        active = [
            a
            for a in self.list_actions(where)
            if a.status in ACTIVE_STATUSES and a.type in (None, "LiveResponse")
        ]
        return max(
            active,
            key=lambda a: a.creation_time.timestamp() if a.creation_time else 0.0,
            default=None,
        )

    # --- library and results ----------------------------------------------------------

    def library_files(self) -> list[LibraryFile]:
        """The live response library."""
        return [_model(LibraryFile, f, "library files") for f in self._pages("/api/libraryfiles")]

    def result_link(self, action_id: str, index: int) -> str:
        """A fresh pre-signed link to a command's result (valid 30 minutes; never log it)."""
        path = f"{_ACTIONS}/{_segment(action_id)}/GetLiveResponseResultDownloadLink(index={index})"
        data = self._get(path)
        link = data.get("value") if isinstance(data, dict) else None
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise ResultError(f"Defender gave no result link for command {index}")
        return link

    def download_result(
        self, action_id: str, index: int, *, max_bytes: int, directory: Path | None = None
    ) -> DownloadedResult:
        """Download and decode a command's result into a temporary file the caller deletes."""
        attempt = 0
        while True:
            link = self.result_link(action_id, index)
            try:
                result = fetch_result(
                    self._download, link, max_bytes=max_bytes, directory=directory
                )
            except (httpx.TransportError, RetryableDownload) as exc:
                if attempt >= self._max_get_retries:
                    if isinstance(exc, httpx.TransportError):
                        raise TransportError(f"result download: {type(exc).__name__}") from exc
                    raise ResultError(str(exc)) from None
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            logger.info(
                "downloaded result action=%s index=%s size=%s compressed=%s",
                action_id,
                index,
                result.size,
                result.compressed,
            )
            return result

    def download_runscript_output(
        self, action_id: str, index: int, *, max_bytes: int
    ) -> RunScriptOutput:
        """Download a RunScript command's result and parse it; nothing is left on disk."""
        result = self.download_result(action_id, index, max_bytes=max_bytes)
        try:
            return parse_runscript_output(result.path.read_bytes())
        finally:
            result.path.unlink(missing_ok=True)
