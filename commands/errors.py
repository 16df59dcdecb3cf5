"""Every error the live response domain raises.

LiveResponseError
├── CommandError            a command or sequence that Defender would refuse (position)
│   └── SyntaxProblem       text that does not parse (line, column)
├── ConfigurationError      a missing or malformed setting (names it)
└── DefenderError           talking to Defender went wrong
    ├── AuthenticationError     no token: the sign-in authority said no
    ├── ApiError                an error answer: status, code, message, target
    │   ├── BadRequest              400
    │   │   └── ActiveRequestAlreadyExists
    │   ├── Unauthorized            401 (after one retry with a new token)
    │   ├── Forbidden               403
    │   ├── NotFound                404
    │   ├── Throttled               429 (retry_after seconds)
    │   └── ServerError             5xx
    ├── TransportError          no answer (connection, timeout) after bounded retries
    ├── OutcomeUnknown          a POST's outcome is unknown: reconcile, never repeat
    ├── BudgetExhausted         our pacing of the API limits found no room in time (retry_after)
    ├── MachineLookupError      a host name matched no machine, or several (candidates)
    └── ResultError             a result could not be fetched or decoded
        └── ResultTooLarge
"""

from __future__ import annotations

__all__ = [
    "ActiveRequestAlreadyExists",
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "BudgetExhausted",
    "CommandError",
    "ConfigurationError",
    "DefenderError",
    "Forbidden",
    "LiveResponseError",
    "MachineLookupError",
    "NotFound",
    "OutcomeUnknown",
    "ResultError",
    "ResultTooLarge",
    "ServerError",
    "SyntaxProblem",
    "Throttled",
    "TransportError",
    "Unauthorized",
    "api_error",
]


class LiveResponseError(Exception):
    """Base of every error raised by ``commands``."""


class CommandError(LiveResponseError, ValueError):
    """A command or a sequence that Defender would refuse; ``position`` is 1-based."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        return f"command {self.position}: {self.message}"


class SyntaxProblem(CommandError):
    """Text that does not parse, with where (line and column, 1-based) and what."""

    def __init__(
        self, message: str, *, line: int, column: int, position: int | None = None
    ) -> None:
        super().__init__(message, position=position)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}"
        if self.position is not None:
            where = f"command {self.position} ({where})"
        return f"{where}: {self.message}"


class ConfigurationError(LiveResponseError):
    """A setting is missing or malformed; the message names it and never shows a secret."""


class DefenderError(LiveResponseError):
    """Talking to Defender went wrong."""


class AuthenticationError(DefenderError):
    """The sign-in authority refused to issue a token (its error code, never the secret)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"sign-in failed: {error}: {description}".rstrip(": "))
        self.error = error
        self.description = description


class ApiError(DefenderError):
    """Defender answered with an error: HTTP status and the body's code, message and target."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(f"Defender answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target  # Defender's correlation id: log it, quote it to Microsoft support


class BadRequest(ApiError):
    """400: the request was refused as it stands."""


class ActiveRequestAlreadyExists(BadRequest):
    """400: the machine already has a live response action running or queued."""


class Unauthorized(ApiError):
    """401, even with a freshly issued token."""


class Forbidden(ApiError):
    """403: missing permission, feature disabled, or device group without remediation."""


class NotFound(ApiError):
    """404: no such machine, action or file."""


class Throttled(ApiError):
    """429: Defender's rate or concurrency limit; wait ``retry_after`` seconds."""

    def __init__(
        self, status: int, code: str, message: str, target: str | None, retry_after: float
    ) -> None:
        super().__init__(status, code, message, target)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx from Defender, after the retries allowed for the request."""


class TransportError(DefenderError):
    """No answer from Defender (connection refused, reset, timeout) after bounded retries."""


class OutcomeUnknown(DefenderError):
    """A request that changes state was sent but its answer was lost.

    It may or may not have taken effect. The caller must reconcile (list the machine's
    actions and look for its request id) before it ever sends the request again.
    """

    def __init__(self, operation: str, cause: str) -> None:
        super().__init__(f"{operation}: outcome unknown ({cause}); reconcile before retrying")
        self.operation = operation
        self.cause = cause


class BudgetExhausted(DefenderError):
    """Defender's API limits, as we pace them, leave no room in time; nothing was sent.

    ``retry_after`` is the number of seconds until a call fits again.
    """

    def __init__(self, retry_after: float, detail: str = "") -> None:
        where = f" ({detail})" if detail else ""
        super().__init__(
            f"Defender's API call budget is spent{where}; room again in {retry_after:.1f} s"
        )
        self.retry_after = retry_after
        self.detail = detail


class MachineLookupError(DefenderError):
    """A host name matched no machine, or several (``candidates`` holds their names)."""

    def __init__(self, query: str, candidates: list[str] | None = None) -> None:
        self.query = query
        self.candidates = candidates or []
        if not self.candidates:
            message = f"no machine is named {query!r} or starts with it"
        else:
            shown = ", ".join(self.candidates[:10])
            more = len(self.candidates) - 10
            if more > 0:
                shown += f" and {more} more"
            message = f"{query!r} matches {len(self.candidates)} machines: {shown}; be more precise"
        super().__init__(message)


class ResultError(DefenderError):
    """A command's result could not be fetched or decoded."""


class ResultTooLarge(ResultError):
    """A result exceeds the configured size bound; nothing past the bound was kept.

    The whole result was still read through SHA-256 so that the analyst can check the copy
    they fetch elsewhere: ``size`` and ``sha256`` are the decoded result's. When reading
    stopped at a hard safety bound (a gzip bomb, say), ``sha256`` is None and ``size`` is
    only a lower bound: the result is *more than* ``size`` bytes (``complete`` is False).
    """

    def __init__(
        self, limit_bytes: int, *, size: int | None = None, sha256: str | None = None
    ) -> None:
        super().__init__(f"the result is larger than the limit of {limit_bytes} bytes")
        self.limit_bytes = limit_bytes
        self.size = size
        self.sha256 = sha256

    @property
    def complete(self) -> bool:
        """Whether ``size`` and ``sha256`` describe the whole result."""
        return self.sha256 is not None


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
}


def api_error(
    status: int, code: str, message: str, target: str | None, retry_after: float = 0.0
) -> ApiError:
    """The typed exception for an error answer."""
    if status == 429:
        return Throttled(status, code, message, target, retry_after)
    if code == "ActiveRequestAlreadyExists":
        return ActiveRequestAlreadyExists(status, code, message, target)
    if status >= 500:
        return ServerError(status, code, message, target)
    return _BY_STATUS.get(status, ApiError)(status, code, message, target)
