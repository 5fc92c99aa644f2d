"""The gateway's HTML pages: the demo chat, console log-in, the agent console, the lead's console.

The pages are static shells; everything they show comes from the JSON APIs, inserted as text.
A page asked for without a valid login redirects to the login page (and back afterwards); the
lead console answers an agent with 403.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from bot.crm.models import AgentRole
from bot.web.deps import COOKIE, SessionDep, SettingsDep, valid_login

WEB_DIR = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=WEB_DIR / "templates")

router = APIRouter(tags=["pages"], include_in_schema=False)

# The demo page loads nothing but its own files; no inline script, no third-party origin.
DEMO_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

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


@router.get("/", response_class=HTMLResponse)
def demo_chat(request: Request, settings: SettingsDep) -> HTMLResponse:
    """The demo chat page."""
    return templates.TemplateResponse(
        request,
        "index.html",
        {"max_message_chars": settings.max_message_chars},
        headers=DEMO_PAGE_HEADERS,
    )


@router.get("/console/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _page(request, "console_login.html", "Log in")


@router.get("/console", response_class=HTMLResponse)
def agent_console(request: Request, session: SessionDep) -> Response:
    if _role(request, session) is None:
        return RedirectResponse("/console/login?next=/console", status_code=303)
    return _page(request, "console.html", "Agent console")


@router.get("/console/lead", response_class=HTMLResponse)
def lead_console(request: Request, session: SessionDep) -> Response:
    role = _role(request, session)
    if role is None:
        return RedirectResponse("/console/login?next=/console/lead", status_code=303)
    if role not in (AgentRole.LEAD, AgentRole.ADMIN):
        return _page(request, "console_forbidden.html", "Not for agents", status_code=403)
    return _page(request, "lead.html", "Lead console")
