"""The web widget's live socket: pushes a visitor's new messages (bot, agent, system) as they are stored.

The widget is embedded on customers' own sites, so unlike the console's socket this one accepts any
Origin. It is safe because it only ever shows the conversation of the visitor id it is given, and
that id is the visitor's secret (issued by the gateway, kept in their browser).

The id travels as a WebSocket subprotocol (`kefu.visitor.<id>`, offered beside `kefu.live`), not
in the URL: browsers cannot set other headers on a socket, and uvicorn and reverse proxies log
every socket's URL with its query string, but not its headers.

The database is the source of truth: the socket sends whatever is stored after the last message it
sent. The in-process hub only says when to look again; a timer looks again anyway, because some
messages (the scheduler's satisfaction surveys, messages stored by another gateway) are never
published on this process's hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from bot.channels.widget import CHANNEL, UnknownVisitor, check_visitor, message_json, rate_limits_of
from bot.crm.conversations import find_conversation
from bot.crm.models import Message
from bot.errors import BadRequest
from bot.live import LiveHub

logger = logging.getLogger(__name__)

# How often the socket looks for new messages when nothing woke it up.
RECHECK_SECONDS = 3.0
# Close codes the widget understands: 4400 = the request itself is wrong, do not retry as it is.
CLOSE_BAD_REQUEST = 4400
# 4401 = the visitor id is not one this service issued: the widget gets a new one and reconnects.
CLOSE_UNKNOWN_VISITOR = 4401
# 4429 = too many new sockets in a minute: the widget polls meanwhile and reconnects later.
CLOSE_TOO_MANY = 4429
# One look at the database sends at most this many messages; the next look sends the rest.
BATCH_LIMIT = 500

# The subprotocol the gateway accepts, and the prefix of the one that carries the visitor id.
LIVE_SUBPROTOCOL = "kefu.live"
VISITOR_SUBPROTOCOL_PREFIX = "kefu.visitor."

router = APIRouter(prefix="/api/web", tags=["web channel"])


@dataclass
class Found:
    """What one look at the database found: the visitor's conversation (if any) and its new messages."""

    conversation_id: int | None
    messages: list[dict[str, Any]]


def messages_after(factory: sessionmaker[Session], visitor: str, after: int) -> Found:
    """The visitor's stored messages with an id above `after`, oldest first (one short session)."""
    with factory.begin() as session:
        conversation = find_conversation(session, CHANNEL, visitor)
        if conversation is None:
            return Found(None, [])
        rows = session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.id > after)
            .order_by(Message.id)
            .limit(BATCH_LIMIT)
        )
        return Found(conversation.id, [message_json(message) for message in rows])


def offered_visitor(subprotocols: list[str]) -> str:
    """The visitor id offered as the subprotocol `kefu.visitor.<id>`; empty when none was."""
    for offered in subprotocols:
        if offered.startswith(VISITOR_SUBPROTOCOL_PREFIX):
            return offered[len(VISITOR_SUBPROTOCOL_PREFIX) :]
    return ""


def parse_after(value: str | None) -> int:
    """The `after` query parameter: the id of the last message the widget has, 0 when it has none."""
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 18:
        raise BadRequest("after must be the id of the last message you have (a whole number >= 0)")
    return int(value)


class LiveVisitor:
    """One widget's socket: what it has been sent so far, and how it sends."""

    def __init__(self, websocket: WebSocket, visitor: str, after: int) -> None:
        self.websocket = websocket
        self.visitor = visitor
        self.last_sent = after
        self.conversation_id: int | None = None
        self._factory: sessionmaker[Session] = websocket.app.state.sessionmaker
        # The reader answers pings while the main loop pushes messages: one frame at a time.
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_json(frame)

    async def send_new(self) -> None:
        """Send everything stored after the last message sent (in batches until nothing is left)."""
        while True:
            found = await run_in_threadpool(messages_after, self._factory, self.visitor, self.last_sent)
            self.conversation_id = found.conversation_id
            for message in found.messages:
                await self.send({"type": "message", "message": message})
                self.last_sent = max(self.last_sent, int(message["id"]))
            if len(found.messages) < BATCH_LIMIT:
                return

    def concerns_me(self, event: dict[str, Any]) -> bool:
        return (
            event.get("type") in ("message", "turn")  # a turn: the bot answered in this chat
            and self.conversation_id is not None
            and event.get("conversation_id") == self.conversation_id
        )

    async def read_client(self) -> None:
        """Answer the widget's pings; anything else it sends is ignored."""
        while True:
            raw = await self.websocket.receive_text()
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if isinstance(frame, dict) and frame.get("type") == "ping":
                await self.send({"type": "pong"})


async def _wait_for_wake_up(events: asyncio.Queue[dict[str, Any]], me: LiveVisitor) -> None:
    """Return when an event concerns this visitor's conversation, or after RECHECK_SECONDS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECHECK_SECONDS
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            event = await asyncio.wait_for(events.get(), remaining)
        except TimeoutError:
            return
        if me.concerns_me(event):
            # Several messages are usually published together (a reply and a notice): take them all
            # in one look at the database.
            while not events.empty():
                events.get_nowait()
            return


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    """Push the visitor's messages with an id above `after`, then each new one as it is stored."""
    # Accept first, then refuse: a browser only sees the close code and reason of an open socket.
    # A browser that offered subprotocols drops a socket whose answer names none of them.
    offered = list(websocket.scope.get("subprotocols") or [])
    await websocket.accept(subprotocol=LIVE_SUBPROTOCOL if LIVE_SUBPROTOCOL in offered else None)
    settings = websocket.app.state.settings
    try:
        if "session" in websocket.query_params:
            raise BadRequest("send the visitor id as the subprotocol kefu.visitor.<id>, never in the URL")
        visitor = check_visitor(offered_visitor(offered), settings.secret_key)
        after = parse_after(websocket.query_params.get("after"))
    except UnknownVisitor as error:
        await websocket.close(code=CLOSE_UNKNOWN_VISITOR, reason=str(error)[:120])
        return
    except BadRequest as error:
        # Close reasons are limited to 123 bytes; ours are shorter.
        await websocket.close(code=CLOSE_BAD_REQUEST, reason=str(error)[:120])
        return
    address = websocket.client.host if websocket.client else None
    refusal = await rate_limits_of(websocket.app).check("live", visitor, address)
    if refusal is not None:
        await websocket.close(
            code=CLOSE_TOO_MANY,
            reason=f"too many connections; try again in {refusal.retry_after_seconds} seconds",
        )
        return

    me = LiveVisitor(websocket, visitor, after)
    hub: LiveHub = websocket.app.state.live
    events = hub.subscribe()
    reader = asyncio.create_task(me.read_client())
    try:
        while not reader.done():
            await me.send_new()
            waiting = asyncio.create_task(_wait_for_wake_up(events, me))
            await asyncio.wait({waiting, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
    except (WebSocketDisconnect, RuntimeError):
        pass  # the widget went away (page closed, network lost) while we were sending
    finally:
        hub.unsubscribe(events)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader
