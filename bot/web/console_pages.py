"""The consoles' pages: log in, the agent console, the support lead's console.

The pages are static shells; everything they show comes from the JSON APIs, inserted as text.
A page asked for without a valid login redirects to the login page (and back afterwards); the
lead console answers an agent with 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from bot.crm.models import AgentRole
from bot.web.app import WEB_DIR, get_session, templates
from bot.web.auth import COOKIE, valid_login

router = APIRouter(tags=["console pages"], include_in_schema=False)

# Our own scripts, styles and API only; the live WebSocket is same-origin too.
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
assert (WEB_DIR / "templates" / "console.html").exists()


def _role(request: Request, session: Session) -> AgentRole | None:
    with session.begin():
        found = valid_login(session, request.cookies.get(COOKIE))
        return found.agent.role if found is not None else None


def _page(request: Request, name: str, title: str, status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"title": title}, headers=CONSOLE_HEADERS, status_code=status_code
    )


@router.get("/console/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _page(request, "console_login.html", "Log in")


@router.get("/console", response_class=HTMLResponse)
def agent_console(request: Request, session: Annotated[Session, Depends(get_session)]) -> Response:
    if _role(request, session) is None:
        return RedirectResponse("/console/login?next=/console", status_code=303)
    return _page(request, "console.html", "Agent console")


@router.get("/console/lead", response_class=HTMLResponse)
def lead_console(request: Request, session: Annotated[Session, Depends(get_session)]) -> Response:
    role = _role(request, session)
    if role is None:
        return RedirectResponse("/console/login?next=/console/lead", status_code=303)
    if role not in (AgentRole.LEAD, AgentRole.ADMIN):
        return _page(request, "console_forbidden.html", "Not for agents", status_code=403)
    return _page(request, "lead.html", "Lead console")
