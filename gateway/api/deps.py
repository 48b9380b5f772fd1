"""Typed FastAPI dependencies: the services, a database session, the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from gateway.services.auth import Caller, authenticate
from gateway.services.wiring import Services


def _services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.services.db.session() as s:
        yield s


def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    sv = request.app.state.services
    with sv.db.session() as s:
        return authenticate(s, sv.members, authorization)


ServicesDep = Annotated[Services, Depends(_services)]
SessionDep = Annotated[Session, Depends(_session, scope="function")]
"""Committed when the route function returns and *before* the response is sent: a client
that got its 2xx reads its own write at once, and a failing commit is the client's error
response, never a 2xx for a change that was not stored."""
CallerDep = Annotated[Caller, Depends(_caller)]
