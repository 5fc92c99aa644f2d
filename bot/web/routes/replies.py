"""Saved replies: leads write, edit and archive them; agents list the ones for a chat and insert
one filled from the CRM.

The rules (what a valid reply is, which order and ticket a chat is about) live in
`bot.crm.replies`; this module maps HTTP onto them. Filling happens here, on the server, from the
chat's CRM rows: the browser sends only which reply and which chat.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bot.crm import replies, sla
from bot.crm.models import Conversation
from bot.errors import NotFound
from bot.web.deps import AnyAgent, Lead, LoginFirstRoute, RecordId, SessionDep, SettingsDep, client_address
from bot.web.schemas import Text

router = APIRouter(prefix="/api/saved-replies", tags=["saved replies"], route_class=LoginFirstRoute)
console_router = APIRouter(prefix="/api/console", tags=["saved replies"], route_class=LoginFirstRoute)

# Generous bounds so that over-long input is the domain's clear 400, not a database error.
_MAX_INPUT = replies.MAX_BODY_CHARS * 4


class ReplyIn(BaseModel):
    shortcut: Text = Field(max_length=_MAX_INPUT, description="lower-case words joined by hyphens")
    title: Text = Field(max_length=_MAX_INPUT)
    body: Text = Field(max_length=_MAX_INPUT, description="the text, with placeholders like {order.number}")
    language: Text = Field(default=replies.FALLBACK_LANGUAGE, max_length=16)


class ReplyEdit(BaseModel):
    shortcut: Text | None = Field(default=None, max_length=_MAX_INPUT)
    title: Text | None = Field(default=None, max_length=_MAX_INPUT)
    body: Text | None = Field(default=None, max_length=_MAX_INPUT)
    language: Text | None = Field(default=None, max_length=16)


def _placeholder_list() -> list[dict[str, str]]:
    return [
        {"name": p.name, "token": "{" + p.name + "}", "meaning": p.meaning, "marker": p.marker}
        for p in replies.PLACEHOLDERS.values()
    ]


@router.get("")
def list_replies(
    session: SessionDep,
    _lead: Lead,
    q: Annotated[str | None, Query(max_length=200)] = None,
    archived: bool = True,
) -> dict[str, Any]:
    """Every saved reply, active first; `archived=false` leaves the archived ones out."""
    with session.begin():
        found = replies.list_all(session, q, include_archived=archived)
        return {
            "replies": [replies.view(r) for r in found],
            "placeholders": _placeholder_list(),
            "languages": list(replies.LANGUAGES),
        }


@router.post("", status_code=201)
def create_reply(body: ReplyIn, request: Request, session: SessionDep, lead: Lead) -> dict[str, Any]:
    with session.begin():
        reply = replies.create(
            session, lead, body.shortcut, body.title, body.body, body.language, client_address(request)
        )
        return replies.view(reply)


@router.get("/{reply_id}")
def get_reply(reply_id: RecordId, session: SessionDep, _lead: Lead) -> dict[str, Any]:
    with session.begin():
        return replies.view(replies.get(session, reply_id))


@router.patch("/{reply_id}")
def edit_reply(
    reply_id: RecordId, body: ReplyEdit, request: Request, session: SessionDep, lead: Lead
) -> dict[str, Any]:
    with session.begin():
        changes = body.model_dump(exclude_none=True)
        reply = replies.edit(session, lead, reply_id, changes, client_address(request))
        return replies.view(reply)


@router.post("/{reply_id}/archive")
def archive_reply(reply_id: RecordId, request: Request, session: SessionDep, lead: Lead) -> dict[str, Any]:
    """Agents stop seeing it; it can be brought back."""
    with session.begin():
        return replies.view(replies.set_archived(session, lead, reply_id, True, client_address(request)))


@router.post("/{reply_id}/unarchive")
def unarchive_reply(reply_id: RecordId, request: Request, session: SessionDep, lead: Lead) -> dict[str, Any]:
    with session.begin():
        return replies.view(replies.set_archived(session, lead, reply_id, False, client_address(request)))


def _conversation(session: Any, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"there is no conversation {conversation_id}")
    return conversation


@console_router.get("/conversations/{conversation_id}/saved-replies")
def replies_for_chat(conversation_id: RecordId, session: SessionDep, _agent: AnyAgent) -> dict[str, Any]:
    """The active saved replies for this chat's language (English where there is no translation)."""
    with session.begin():
        conversation = _conversation(session, conversation_id)
        return {
            "language": replies.chat_language(conversation),
            "replies": [
                {"id": r.id, "shortcut": r.shortcut, "title": r.title, "body": r.body, "language": r.language}
                for r in replies.for_chat(session, conversation)
            ],
        }


@console_router.post("/conversations/{conversation_id}/saved-replies/{reply_id}/render")
def render_reply(
    conversation_id: RecordId, reply_id: RecordId, session: SessionDep, agent: AnyAgent, settings: SettingsDep
) -> dict[str, Any]:
    """The reply filled from this chat's CRM rows, with a marker for each value the CRM lacks."""
    with session.begin():
        conversation = _conversation(session, conversation_id)
        reply = replies.get(session, reply_id)
        if reply.archived:
            raise NotFound(f"saved reply /{reply.shortcut} is archived; ask a lead to bring it back")
        facts = replies.chat_facts(session, conversation, agent, sla.load_policy(settings.sla_policy_file))
        result = replies.fill(reply.body, facts)
        return {
            "id": reply.id,
            "shortcut": reply.shortcut,
            "text": result.text,
            "filled": result.filled,
            "missing": [
                {"placeholder": p.name, "marker": p.marker, "meaning": p.meaning} for p in result.missing
            ],
        }
