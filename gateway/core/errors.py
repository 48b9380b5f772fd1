"""The one error root of claimx and its few meaningful branches.

Every error carries a stable machine-readable ``code`` and a human message that never
contains personal data, so the API can turn any of them into a 4xx body and logs stay clean.
"""

from __future__ import annotations

from typing import Any


class ClaimxError(Exception):
    """Root of every error claimx raises on purpose."""

    code: str = "claimx_error"
    http_status: int = 400

    def __init__(self, msg: str, *, code: str | None = None, http_status: int | None = None,
                 **detail: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.detail: dict[str, Any] = detail

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable body for API responses and CLI JSON output."""
        return {"code": self.code, "message": self.msg, **self.detail}


class InputError(ClaimxError):
    """Input that is malformed or violates the format (HTTP 400/413/422)."""

    code = "invalid_input"
    http_status = 422


class VerificationError(ClaimxError):
    """A signature, digest, proof or key-validity check failed."""

    code = "verification_failed"
    http_status = 422


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify."""

    code = "invalid_proof"


class NotFoundError(ClaimxError):
    """A record, tree head or member that does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(ClaimxError):
    """The request contradicts stored state (e.g. same id, different content)."""

    code = "conflict"
    http_status = 409


class AuthError(ClaimxError):
    """The caller is not authenticated (401) or not allowed (403)."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(AuthError):
    code = "forbidden"
    http_status = 403


class ChainError(ClaimxError):
    """The chain refused or could not be reached; contract custom errors are decoded here."""

    code = "chain_error"
    http_status = 502

    def __init__(self, msg: str, *, name: str | None = None, args: tuple[Any, ...] = (),
                 code: str | None = None) -> None:
        super().__init__(msg, code=code, error=name, args=[_jsonable(a) for a in args])
        self.name = name
        self.error_args = args


class UnavailableError(ClaimxError):
    """A dependency (the chain node, the database) is down: 503 with ``Retry-After``.

    Never a 4xx: the request may be fine, and the caller should simply try again later.
    """

    code = "unavailable"
    http_status = 503

    def __init__(self, msg: str, *, code: str | None = None, retry_after: int = 5,
                 **detail: Any) -> None:
        super().__init__(msg, code=code, retry_after=retry_after, **detail)
        self.retry_after = retry_after


class ChainUnavailableError(ChainError, UnavailableError):
    """The chain node did not answer (refused, timed out, or the circuit breaker is open).

    A :class:`ChainError` too, so code that handles chain failures keeps working, but never
    an answer from the chain: callers must not read it as "no such member" or "key invalid".
    """

    code = "chain_unavailable"
    http_status = 503

    def __init__(self, msg: str, *, code: str | None = None, retry_after: int = 5) -> None:
        UnavailableError.__init__(self, msg, code=code, retry_after=retry_after)
        self.name = None
        self.error_args = ()


class DatabaseUnavailableError(UnavailableError):
    """The database refused a connection or dropped it mid-request."""

    code = "database_unavailable"


class AdapterError(InputError):
    """An institutional export that cannot be mapped into a claim packet.

    ``loc`` locates the problem in the source (segment/field/component, CSV row/column,
    XML path, JSON pointer); the message never repeats the offending value.
    """

    code = "adapter_error"

    def __init__(self, msg: str, *, code: str = "adapter_error", loc: tuple[str | int, ...] = (),
                 line: int | None = None, file: str | None = None) -> None:
        super().__init__(msg, code=code, loc=list(loc), line=line, file=file)
        self.loc = loc
        self.line = line
        self.file = file

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.loc:
            where.append("/".join(str(p) for p in self.loc))
        prefix = ":".join(where)
        return f"{prefix}: {self.code}: {self.msg}" if prefix else f"{self.code}: {self.msg}"


def from_validation(exc: Any, what: str, code: str) -> InputError:
    """An InputError naming the first failing field of a pydantic ``ValidationError``."""
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    return InputError(f"{what} field {'/'.join(loc) or '(root)'}: {first['msg']}", code=code,
                      loc=loc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
