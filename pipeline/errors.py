"""The error tree. Every error says whether retrying can help (``retriable``):
the gateway answers any retriable error with 503 and ``Retry-After``
(pipeline/gateway/errors.py), whatever its class.

ImstreamError
 ├── ConfigError            a setting is missing, mistyped or inconsistent
 ├── StackError             the local stack (infra) cannot start or answer
 │    ├── MissingToolError  java, mvn or apt-get is not installed
 │    ├── PortInUseError    another process holds a port the stack needs
 │    └── StartTimeoutError a server did not answer within its timeout   (retriable)
 ├── EventError             input that is not a valid event (never retriable:
 │    │                     the gateway answers 4xx, agents dead-letter it)
 │    ├── DecodeError       not JSON / not UTF-8 / unknown type or version
 │    └── ValidationError   a field is missing, of the wrong type or too large
 ├── RejectedError          a valid event the pipeline refuses (sender not a
 │                          member, unknown conversation, ...)
 ├── AccessDeniedError      a user asks for what is not theirs
 ├── AuthError              a token is missing, malformed, forged or expired
 ├── RateLimitedError       a user is over one of the gateway's limits (429)
 ├── CursorError            a sync cursor the server cannot serve
 │    └── CursorExpiredError    older than the sync retention: re-sync from history
 ├── QueryError             ClickHouse refused an ad-hoc query (imstream sql)
 ├── RefusedError           an operation that would overwrite data, asked for
 │                          without the flag that allows it
 └── StoreUnavailableError  ClickHouse cannot be reached right now          (retriable)
"""

from __future__ import annotations


class ImstreamError(Exception):
    """Root of every error imstream raises on purpose."""

    retriable = False


class ConfigError(ImstreamError):
    pass


class StackError(ImstreamError):
    pass


class MissingToolError(StackError):
    pass


class PortInUseError(StackError):
    pass


class StartTimeoutError(StackError):
    retriable = True


class EventError(ImstreamError):
    """The reason is kept short and stable: it goes into dead-letter records.
    ``kind`` names the class of problem for metrics (a bounded set of values)."""

    kind = "invalid"


class DecodeError(EventError):
    kind = "undecodable"


class ValidationError(EventError):
    kind = "invalid"


class RejectedError(ImstreamError):
    pass


class AccessDeniedError(ImstreamError):
    pass


class AuthError(ImstreamError):
    pass


class CursorError(ImstreamError):
    pass


class CursorExpiredError(CursorError):
    def __init__(self, message: str, head: int = 0) -> None:
        super().__init__(message)
        self.head = head
        """The user's newest sync_seq: where a device continues after re-syncing."""


class QueryError(ImstreamError):
    """The server's reason, without its stack trace."""


class RefusedError(ImstreamError):
    pass


class StoreUnavailableError(ImstreamError):
    retriable = True


class RateLimitedError(ImstreamError):
    """Over a limit: try again after ``retry_after_s`` (the gateway answers 429)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
