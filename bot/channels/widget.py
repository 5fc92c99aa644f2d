"""The web chat channel's HTTP API: a visitor sends a message and reads the conversation so far."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from bot.app_state import RasaDep, SessionDep, SettingsDep, client_address

# FALLBACK_TEXT and WAITING_FOR_AGENT_TEXT are re-exported: they are what a web visitor reads.
from bot.channels.pipeline import FALLBACK_TEXT, WAITING_FOR_AGENT_TEXT, handle_message, message_json
from bot.channels.widget_ratelimit import Refusal, WebRateLimits, web_rate_limits
from bot.crm.conversations import find_conversation, history
from bot.crm.models import ConversationMode
from bot.errors import BadRequest, KefuError

__all__ = ["FALLBACK_TEXT", "WAITING_FOR_AGENT_TEXT", "message_json", "router"]

CHANNEL = "web"
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
MAX_ID_CHARS = 128
# A visitor id is the only key to a web chat, so the gateway issues it (POST /api/web/visitors):
# 144 random bits, then a 96-bit HMAC of them under SECRET_KEY, all base64url (24 + 16 characters).
# The tag lets every gateway recognise its own ids without storing them, and makes ids a page or
# a script chose for itself ("Qz", "history-3", an id from an older widget) useless.
VISITOR_RANDOM_BYTES = 18
VISITOR_TAG_BYTES = 12
_RANDOM_CHARS = 24
VISITOR_ID_CHARS = 40
_VISITOR_ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{{VISITOR_ID_CHARS}}}")
# Generous for 2,000 characters even when every one is a JSON-escaped surrogate pair.
MAX_BODY_BYTES = 64 * 1024


@asynccontextmanager
async def _rate_limits_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The widget API's rate limits live as long as the app (and close their Redis connections)."""
    limits = web_rate_limits(app.state.settings)
    app.state.web_rate_limits = limits
    try:
        yield
    finally:
        await limits.aclose()


# The lifespan is merged into the app's when the router is included.
router = APIRouter(prefix="/api/web", tags=["web channel"], lifespan=_rate_limits_lifespan)


def rate_limits_of(app: FastAPI) -> WebRateLimits:
    """The app's web rate limits (made here when the app runs without its lifespan, as some tests do)."""
    limits: WebRateLimits | None = getattr(app.state, "web_rate_limits", None)
    if limits is None:
        limits = app.state.web_rate_limits = web_rate_limits(app.state.settings)
    return limits


def too_many_messages(refusal: Refusal) -> str:
    return (
        f"too many messages from {refusal.limit.subject} in a minute (the limit is {refusal.limit.limit}); "
        f"this one was not saved: send it again in {refusal.retry_after_seconds} seconds"
    )


class UnknownVisitor(KefuError):
    """A well-formed visitor id this chat service did not issue (or issued under another SECRET_KEY)."""

    status_code = 401


def _visitor_tag(secret_key: str, random_part: str) -> str:
    digest = hmac.new(
        secret_key.encode(), b"kefu web visitor id\x00" + random_part.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest[:VISITOR_TAG_BYTES]).decode()


def issue_visitor_id(secret_key: str) -> str:
    """A new visitor id: random, and signed so that this service (and only it) recognises it."""
    random_part = secrets.token_urlsafe(VISITOR_RANDOM_BYTES)
    return random_part + _visitor_tag(secret_key, random_part)


def is_issued_visitor_id(secret_key: str, value: str) -> bool:
    """Whether `value` is a visitor id issued with this secret key (compared in constant time)."""
    if not _VISITOR_ID_PATTERN.fullmatch(value):
        return False
    random_part, tag = value[:_RANDOM_CHARS], value[_RANDOM_CHARS:]
    return hmac.compare_digest(tag, _visitor_tag(secret_key, random_part))


def check_visitor(value: str, secret_key: str) -> str:
    """The visitor id, when this service issued it; 400 for a malformed one, 401 for a foreign one."""
    check_id(value, "session")
    if not is_issued_visitor_id(secret_key, value):
        raise UnknownVisitor(
            "session is not a visitor id this chat service issued: "
            "get a new one with POST /api/web/visitors and use that"
        )
    return value


class WebMessageIn(BaseModel):
    """What the chat page posts: the visitor id it keeps, the text, and an optional id for retries."""

    session: str = Field(description="The visitor id the gateway issued (POST /api/web/visitors)")
    text: str = Field(description="The customer's message; at most max_message_chars after trimming")
    client_message_id: str | None = Field(
        default=None, description="Unique per message; a retry with the same id is answered, not re-sent"
    )


def check_id(value: str, name: str) -> str:
    """Refuse an id that is empty, too long or has characters outside [A-Za-z0-9_-]."""
    if not value:
        raise BadRequest(f"{name} is empty: send the id the chat page generated")
    if len(value) > MAX_ID_CHARS:
        raise BadRequest(f"{name} is {len(value)} characters; the limit is {MAX_ID_CHARS}")
    if not _ID_PATTERN.fullmatch(value):
        raise BadRequest(f"{name} may contain only letters, digits, '-' and '_'")
    return value


def check_text(value: str, limit: int) -> str:
    """The message text, trimmed; refuse it when empty or longer than `limit` characters."""
    text = value.strip()
    if not text:
        raise BadRequest("text is empty: type a message")
    if len(text) > limit:
        raise BadRequest(f"text is {len(text)} characters; the limit is {limit}")
    if "\x00" in text:
        raise BadRequest("text contains a NUL character (\\u0000); remove it and send again")
    return text


@router.post(
    "/messages",
    max_body_size=MAX_BODY_BYTES,
    responses={429: {"description": "Too many messages in a minute; nothing was stored. See Retry-After."}},
)
async def post_message(
    body: WebMessageIn,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    rasa: RasaDep,
) -> dict[str, Any]:
    """Store a visitor's message, then let the bot answer it (or leave it for a person)."""
    visitor = check_visitor(body.session, settings.secret_key)
    text = check_text(body.text, settings.max_message_chars)
    client_message_id = (
        check_id(body.client_message_id, "client_message_id") if body.client_message_id is not None else None
    )
    refusal = await rate_limits_of(request.app).check("messages", visitor, client_address(request))
    if refusal is not None:
        # Refused before anything is stored; the widget keeps the message and sends it again later.
        # retry_after is in the body too: a page on another site cannot read the Retry-After header.
        response.status_code = 429
        response.headers["Retry-After"] = str(refusal.retry_after_seconds)
        return {"error": too_many_messages(refusal), "retry_after": refusal.retry_after_seconds}

    handled = await handle_message(
        session,
        settings,
        rasa,
        request.app.state.live,
        CHANNEL,
        visitor,
        text,
        client_message_id,
        address=client_address(request),
    )
    return {
        "conversation_id": handled.conversation_id,
        "mode": handled.mode,
        "message_id": handled.inbound.id,
        "messages": [message_json(message) for message in handled.replies],
    }


def _load_history(session: Session, visitor: str) -> dict[str, Any]:
    with session.begin():
        conversation = find_conversation(session, CHANNEL, visitor)
        if conversation is None:
            return {"conversation_id": None, "mode": ConversationMode.BOT.value, "messages": []}
        return {
            "conversation_id": conversation.id,
            "mode": conversation.mode.value,
            "messages": [message_json(message) for message in history(session, conversation)],
        }


class VisitorIn(BaseModel):
    """A visitor id in a request body, where (unlike a URL) no proxy or server log records it."""

    session: str = Field(description="The visitor id the gateway issued (POST /api/web/visitors)")


@router.post("/visitors", status_code=201, responses={201: {"description": '{"session": "<visitor id>"}'}})
def new_visitor(settings: SettingsDep) -> dict[str, str]:
    """Issue a visitor id: the chat page keeps it (localStorage) and sends it with every request."""
    return {"session": issue_visitor_id(settings.secret_key)}


@router.post("/history", max_body_size=MAX_BODY_BYTES)
def post_history(body: VisitorIn, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The visitor's conversation so far, oldest first; a new visitor has none yet."""
    return _load_history(session, check_visitor(body.session, settings.secret_key))


@router.get("/history")
def get_history(
    session_id: Annotated[str, Query(alias="session", description="The visitor id")],
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """The same for scripts; the widget uses POST, which keeps the visitor id out of URLs."""
    return _load_history(session, check_visitor(session_id, settings.secret_key))
