"""Every FastAPI dependency of the gateway's routes, declared once: routers import this, never `app.py`.

The shared state (database session, settings, Rasa, live hub, client address) comes from
`bot.app_state`, which the channels use too; the console's login checks are added here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from bot.app_state import (
    LiveDep,
    RasaDep,
    SessionDep,
    SettingsDep,
    client_address,
    get_app_settings,
    get_live_hub,
    get_rasa_client,
    get_session,
)
from bot.crm.models import Agent, AgentRole, AgentSession, utcnow
from bot.errors import Forbidden, Unauthorized
from knowledge_base.live import LiveIndex

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "MAX_RECORD_ID",
    "AnyAgent",
    "KbIndexDep",
    "Lead",
    "LoginFirstRoute",
    "RecordId",
    "LiveDep",
    "RasaDep",
    "SessionDep",
    "SettingsDep",
    "client_address",
    "current_agent",
    "current_lead",
    "get_app_settings",
    "get_kb_index",
    "get_live_hub",
    "get_rasa_client",
    "get_session",
    "login_of",
    "token_digest",
    "valid_login",
]

COOKIE = "kefu_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Row ids are 64-bit signed integers in SQLite and PostgreSQL; a larger one cannot name a row (and
# the database drivers refuse to send it), so it is refused as a bad parameter (422) up front.
MAX_RECORD_ID = 2**63 - 1
RecordId = Annotated[int, Path(ge=1, le=MAX_RECORD_ID, description="a record's id (a whole number >= 1)")]


def token_digest(token: str) -> str:
    """What is stored of a login's cookie token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def valid_login(session: Session, token: str | None) -> AgentSession | None:
    """The console login behind a cookie's token, if it exists, has not expired and its agent is
    active; used by the API routes, the console pages and the live WebSocket alike."""
    if not token:
        return None
    found = session.scalar(select(AgentSession).where(AgentSession.token_hash == token_digest(token)))
    if found is None or found.expires_at <= utcnow() or not found.agent.active:
        return None
    return found


def login_of(request: Request, session: Session) -> AgentSession:
    """The request's console login; a state change must also carry the login's CSRF token."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthorized("log in first")
    found = valid_login(session, token)
    if found is None:
        raise Unauthorized("your login has expired; log in again")
    if request.method not in SAFE_METHODS and not secrets.compare_digest(
        request.headers.get(CSRF_HEADER, ""), found.csrf_token
    ):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header; reload the console and try again")
    return found


def _check_login(factory: sessionmaker[Session], request: Request) -> None:
    with factory.begin() as session:
        login_of(request, session)


class LoginFirstRoute(APIRoute):
    """A console route that checks the login (and CSRF token) before it reads the request body.

    FastAPI reads and validates the body before it runs dependencies such as `current_agent`, so
    an anonymous request with a large or malformed body would be read and answered 413 or 422;
    with this route class it is answered 401 (or 403) and its body is never read.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def login_first(request: Request) -> Response:
            if request.method not in SAFE_METHODS:  # safe methods carry no body to protect
                await run_in_threadpool(_check_login, request.app.state.sessionmaker, request)
            return await handler(request)

        return login_first


def current_agent(request: Request, session: SessionDep) -> Agent:
    """The logged-in agent or lead (401 if none; 403 if a state change lacks the CSRF token)."""
    with session.begin():
        agent = login_of(request, session).agent
        session.expunge(agent)
    return agent


def current_lead(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
    if agent.role not in (AgentRole.LEAD, AgentRole.ADMIN):
        raise Forbidden("only support leads can do this")
    return agent


def get_kb_index(request: Request) -> LiveIndex:
    index: LiveIndex = request.app.state.kb_index
    return index


AnyAgent = Annotated[Agent, Depends(current_agent)]
Lead = Annotated[Agent, Depends(current_lead)]
KbIndexDep = Annotated[LiveIndex, Depends(get_kb_index)]
