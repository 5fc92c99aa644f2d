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
from collections import Counter
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
# Standard close codes (RFC 6455) for what a client sends: a binary frame, where only JSON text is
# understood (1003), and text that is not a JSON object (1007).
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007

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


class BadFrame(Exception):
    """A client sent a frame the socket does not understand; it is closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def receive_text_frame(websocket: WebSocket) -> str:
    """The next text frame; BadFrame (1003) for a binary one, WebSocketDisconnect when the client left."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise BadFrame(CLOSE_UNSUPPORTED_DATA, "binary frames are not supported; send JSON text")
    return str(text)


async def close_for(websocket: WebSocket, bad: BadFrame) -> None:
    """Close the socket over a bad frame, saying why; one warning line, no traceback."""
    logger.warning("closing a live socket (%s): %s", bad.code, bad.reason)
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code=bad.code, reason=bad.reason)


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
        """Answer the widget's pings; other JSON objects are ignored; anything else closes the socket."""
        try:
            while True:
                raw = await receive_text_frame(self.websocket)
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = None
                if not isinstance(frame, dict):
                    raise BadFrame(
                        CLOSE_INVALID_PAYLOAD, 'frames must be JSON objects, e.g. {"type": "ping"}'
                    )
                if frame.get("type") == "ping":
                    await self.send({"type": "pong"})
        except BadFrame as bad:
            async with self._send_lock:
                await close_for(self.websocket, bad)


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
    open_sockets = open_sockets_of(websocket.app)
    most = websocket.app.state.settings.web_live_sockets_per_address
    if address is not None and most > 0 and open_sockets[address] >= most:
        # The rate limit counts new sockets; this bounds the ones kept open (each holds memory and
        # a look at the database every few seconds). The widget falls back to polling.
        await websocket.close(
            code=CLOSE_TOO_MANY, reason=f"too many open chats from your address (limit {most})"
        )
        return
    if address is not None:
        open_sockets[address] += 1
    try:
        await _serve(websocket, visitor, after)
    finally:
        if address is not None:
            open_sockets[address] -= 1
            if open_sockets[address] <= 0:
                del open_sockets[address]


def open_sockets_of(app: Any) -> Counter[str]:
    """How many live sockets each client address holds open on this gateway."""
    counts: Counter[str] | None = getattr(app.state, "open_live_sockets", None)
    if counts is None:
        counts = app.state.open_live_sockets = Counter()
    return counts


async def _serve(websocket: WebSocket, visitor: str, after: int) -> None:
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
