"""Console logins for agents and leads: session cookies, CSRF tokens, role checks.

A login sets the `kefu_session` cookie (HttpOnly, SameSite=Strict, Secure in production) holding a
random token; only its SHA-256 is stored. Every state-changing request must also send the
session's CSRF token in the `X-CSRF-Token` header, which a page on another site cannot read.
"""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.crm.audit import audit
from bot.crm.models import Agent, AgentSession, AuditLog, utcnow
from bot.errors import TooManyRequests, Unauthorized
from bot.web.deps import COOKIE, SessionDep, SettingsDep, client_address, login_of, token_digest
from bot.web.schemas import Text, agent_view

SESSION_HOURS = 12
_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
# Password guessing is slowed by refusing logins after this many failures (audit rows
# "login_failed") in the window: per e-mail address from one client address, so one account cannot be
# brute-forced from there, and per client address, so one client cannot spray a common password over
# many accounts. A stranger's failures never lock the agent out: they count against the stranger's
# address only (agent e-mails are easy to guess). The per-address limit is higher because an office
# behind one NAT address shares it. Unknown e-mails count like known ones, so a refusal says nothing
# about whether an account exists. Without a client address, failures count per e-mail.
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
LOGIN_MAX_FAILURES_PER_EMAIL = 5
LOGIN_MAX_FAILURES_PER_SOURCE = 20

router = APIRouter(prefix="/api/auth", tags=["console login"])


class LoginIn(BaseModel):
    email: Text = Field(max_length=320)
    password: Text = Field(max_length=1024)


def _throttled_until(session: Session, email: str, source: str | None) -> datetime | None:
    """When logins for this e-mail and client address are allowed again; None if they are now."""
    now = utcnow()
    recent_failures = select(AuditLog.created_at).where(
        AuditLog.action == "login_failed", AuditLog.created_at > now - LOGIN_FAILURE_WINDOW
    )
    same_email = AuditLog.details["email"].as_string() == email
    if source is None:
        limits = [(same_email, LOGIN_MAX_FAILURES_PER_EMAIL)]
    else:
        limits = [
            (same_email & (AuditLog.source == source), LOGIN_MAX_FAILURES_PER_EMAIL),
            (AuditLog.source == source, LOGIN_MAX_FAILURES_PER_SOURCE),
        ]
    until = None
    for condition, limit in limits:
        # The limit-th newest failure: once it leaves the window, fewer than `limit` remain.
        oldest_counted = session.scalar(
            recent_failures.where(condition).order_by(AuditLog.created_at.desc()).offset(limit - 1).limit(1)
        )
        if oldest_counted is not None:
            candidate = oldest_counted + LOGIN_FAILURE_WINDOW
            until = candidate if until is None else max(until, candidate)
    return until


@router.post("/login")
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Log in with e-mail and password; answers with the account and the CSRF token to send back."""
    email = body.email.strip().lower()
    with session.begin():
        until = _throttled_until(session, email, client_address(request))
        if until is not None:
            # Recorded and committed before refusing, like failed logins; it does not count as one.
            audit(
                session,
                "anonymous",
                "login_throttled",
                "agent",
                None,
                {"email": email},
                client_address(request),
            )
    if until is not None:
        minutes = max(1, math.ceil((until - utcnow()).total_seconds() / 60))
        raise TooManyRequests(
            f"too many failed logins; wait {minutes} minute{'s' if minutes > 1 else ''} and try again. "
            "Forgot your password? A Kefu admin can set a new one."
        )
    with session.begin():
        agent = session.scalar(select(Agent).where(Agent.email == email))
        try:
            _hasher.verify(agent.password_hash if agent else _DUMMY_HASH, body.password)
            valid = agent is not None and agent.active
        except (VerificationError, InvalidHashError):
            valid = False
        if not valid or agent is None:
            # Recorded and committed before refusing: the audit log must keep failed attempts.
            audit(
                session,
                "anonymous",
                "login_failed",
                "agent",
                agent.id if agent else None,
                {"email": email},
                client_address(request),
            )
    if not valid or agent is None:
        raise Unauthorized("wrong e-mail or password")
    with session.begin():
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session.add(
            AgentSession(
                token_hash=token_digest(token),
                agent_id=agent.id,
                csrf_token=csrf,
                expires_at=utcnow() + timedelta(hours=SESSION_HOURS),
                source=client_address(request),
            )
        )
        audit(session, f"agent:{agent.id}", "login", "agent", agent.id, {}, client_address(request))
        view = agent_view(agent)
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=settings.kefu_env == "production",
        path="/",
    )
    return {"agent": view, "csrf_token": csrf}


@router.get("/me")
def me(request: Request, session: SessionDep) -> dict[str, Any]:
    with session.begin():
        found = login_of(request, session)
        return {"agent": agent_view(found.agent), "csrf_token": found.csrf_token}


@router.post("/logout")
def logout(request: Request, response: Response, session: SessionDep) -> dict[str, Any]:
    with session.begin():
        found = login_of(request, session)
        audit(
            session, f"agent:{found.agent_id}", "logout", "agent", found.agent_id, {}, client_address(request)
        )
        session.execute(delete(AgentSession).where(AgentSession.id == found.id))
    response.delete_cookie(COOKIE, path="/")
    return {"ok": True}
