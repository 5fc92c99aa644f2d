"""Every FastAPI dependency of the gateway's routes, declared once: routers import this, never `app.py`.

The shared state (database session, settings, Rasa, live hub, client address) comes from
`bot.app_state`, which the channels use too; the console's login checks are added here.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

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
    "AnyAgent",
    "KbIndexDep",
    "Lead",
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
