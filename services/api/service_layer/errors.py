"""What went wrong, in the service layer's words: no HTTP here.

The HTTP layer maps each kind to a problem+json answer (services/api/http/problems.py:
NotFound 404, Forbidden 403, Conflict 409, Invalid 422); the pages and the CLI catch them
as they are. `kind` is the problem type's suffix when it is more specific than the status's
default (`retry-not-allowed`, `creator-required`...), `title` likewise."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the service layer's refusals; `detail` is said to the caller as is."""

    kind: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if kind is not None:
            self.kind = kind
        self.title = title
        self.retry_after_s = retry_after_s  # when trying again may succeed (a busy key)


class NotFound(DomainError):
    """No such thing, or one the caller may not see (another creator's is absent too)."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class Conflict(DomainError):
    """The thing's current state does not allow it (a retry of a DM that went out...)."""


class Invalid(DomainError):
    """The request is well-formed but names something the rules refuse (a 422)."""
