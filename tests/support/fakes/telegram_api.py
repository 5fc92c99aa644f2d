"""A fake Telegram Bot API server (in-process or as a CLI) with call recording and fault injection."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_TOKEN = "123456789:kefu-test-token"
BOT_FIRST_NAME = "Kefu test bot"
BOT_USERNAME = "kefu_test_bot"
TEXT_LIMIT = 4096  # UTF-16 code units of visible text, as Telegram counts
CALLBACK_DATA_LIMIT = 64  # bytes
DEFAULT_HANG_SECONDS = 30.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
FAIL_KINDS = ("retry_after", "server_error", "timeout", "bad_request", "forbidden")
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
REPO_ROOT = Path(__file__).resolve().parents[3]

JSON = dict[str, Any]

# Form-encoded requests (what PTB 22 sends: httpx `data=` with every non-string value JSON-dumped)
# carry only strings, so parameters are turned back into the types Telegram would read them as.
_INT_PARAMS = frozenset(
    {
        "message_id",
        "offset",
        "limit",
        "max_connections",
        "cache_time",
        "message_thread_id",
        "reply_to_message_id",
    }
)
_FLOAT_PARAMS = frozenset({"timeout"})
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "entities",
        "link_preview_options",
        "reply_parameters",
        "caption_entities",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "show_alert",
        "disable_web_page_preview",
        "allow_sending_without_reply",
    }
)


# --- Errors ------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status = error_code, like Telegram."""

    def __init__(
        self, code: int, description: str, parameters: JSON | None = None, outcome: str = ""
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters
        self.outcome = outcome or _OUTCOMES.get(code, "error")


_OUTCOMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    429: "retry_after",
    500: "server_error",
    504: "timeout",
}


class EntityParseError(ValueError):
    """Telegram could not parse the formatting of a text (the part after "can't parse entities: ")."""


class CallsTimeout(AssertionError):
    """wait_for_calls gave up; the message lists every recorded call (an AssertionError for pytest)."""


# --- Text: HTML parse mode and lengths --------------------------------------------------------


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units: Telegram's unit for text limits and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z][a-zA-Z0-9]*));")
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")


@dataclass
class _OpenTag:
    name: str
    offset: int  # UTF-16 offset in the visible text where the tag's content starts
    attrs: dict[str, str]


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_entity(text: str, index: int, strict: bool) -> tuple[str, int]:
    """The character an '&' at `index` stands for and the index after it."""
    match = _ENTITY_RE.match(text, index)
    if match:
        decimal, hexadecimal, name = match.groups()
        code = int(decimal) if decimal else int(hexadecimal, 16) if hexadecimal else None
        if code is not None and 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code), match.end()
        if name is not None and name.lower() in _NAMED_ENTITIES:
            return _NAMED_ENTITIES[name.lower()], match.end()
    if strict:
        # Telegram itself keeps a stray '&' as text; we refuse it because our renderer must escape
        # every '&' (a stray one means user text reached the HTML unescaped).
        raise EntityParseError(
            f'Unsupported HTML entity or unescaped "&" at byte offset {_byte_offset(text, index)}'
        )
    return "&", index + 1


def _parse_start_tag(text: str, index: int, strict: bool) -> tuple[str, dict[str, str], int]:
    """Name, attributes and the index after '>' of the start tag at `index` ('<')."""
    start_byte = _byte_offset(text, index)
    name_match = _TAG_NAME_RE.match(text, index + 1)
    assert name_match is not None  # the pattern matches the empty string
    name = name_match.group().lower()
    if name not in _HTML_TAGS:
        raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {start_byte}')
    attrs: dict[str, str] = {}
    i = name_match.end()
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            raise EntityParseError(f"Unclosed start tag at byte offset {start_byte}")
        if text[i] == ">":
            return name, attrs, i + 1
        attr_match = _ATTR_NAME_RE.match(text, i)
        if attr_match is None:
            raise EntityParseError(f"Empty attribute name in the tag at byte offset {start_byte}")
        attr = attr_match.group().lower()
        i = attr_match.end()
        value = ""
        if i < len(text) and text[i] == "=":
            i += 1
            if i < len(text) and text[i] in "\"'":
                end = text.find(text[i], i + 1)
                if end < 0:
                    raise EntityParseError(f"Unclosed start tag at byte offset {start_byte}")
                raw, i = text[i + 1 : end], end + 1
            else:
                end = i
                while end < len(text) and not text[end].isspace() and text[end] != ">":
                    end += 1
                raw, i = text[i:end], end
            value = _unescape(raw, strict)
        attrs[attr] = value


def _unescape(raw: str, strict: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&":
            char, i = _decode_entity(raw, i, strict)
            out.append(char)
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _entity_for(tag: _OpenTag, end: int, inside_pre: _OpenTag | None) -> JSON | None:
    length = end - tag.offset
    if length <= 0:  # Telegram drops empty entities
        return None
    kind = _TAG_ENTITY[tag.name]
    entity: JSON = {"type": kind, "offset": tag.offset, "length": length}
    if tag.name == "a":
        href = tag.attrs.get("href", "")
        if not href:
            return None
        if href.startswith("tg://user?id="):
            entity = {"type": "text_mention", "offset": tag.offset, "length": length}
            entity["user"] = {"id": int(href.split("=", 1)[1] or 0), "is_bot": False, "first_name": ""}
        else:
            entity["url"] = href
    elif tag.name == "code" and inside_pre is not None:
        return None  # <pre><code class="language-x"> is one pre entity with a language
    elif tag.name == "pre":
        language = tag.attrs.get("_language")
        if language:
            entity["language"] = language
    elif tag.name == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    elif tag.name == "tg-emoji":
        entity["custom_emoji_id"] = tag.attrs.get("emoji-id", "")
    return entity


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[JSON]]:
    """Visible text and entities of an HTML-formatted text, or EntityParseError like Telegram's.

    Only Telegram's tags are allowed (b, strong, i, em, u, ins, s, strike, del, span class="tg-spoiler",
    tg-spoiler, a href, code, pre, blockquote, tg-emoji), and only &lt; &gt; &amp; &quot; and
    numeric entities. Offsets are in UTF-16 code units."""
    out: list[str] = []
    position = 0  # UTF-16 offset of the next visible character
    stack: list[_OpenTag] = []
    entities: list[JSON] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            if text.startswith("</", i):
                end = text.find(">", i)
                if end < 0:
                    raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, i)}")
                name = text[i + 2 : end].strip().lower()
                if not stack:
                    raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, i)}")
                if stack[-1].name != name:
                    raise EntityParseError(
                        f"Unmatched end tag at byte offset {_byte_offset(text, i)}, "
                        f'expected "</{stack[-1].name}>", found "</{name}>"'
                    )
                tag = stack.pop()
                inside_pre = next((t for t in stack if t.name == "pre"), None)
                if tag.name == "code" and inside_pre is not None and tag.attrs.get("class", ""):
                    language = tag.attrs["class"].removeprefix("language-")
                    inside_pre.attrs["_language"] = language
                entity = _entity_for(tag, position, inside_pre)
                if entity is not None:
                    entities.append(entity)
                i = end + 1
                continue
            name, attrs, i_after = _parse_start_tag(text, i, strict)
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, i)}'
                )
            stack.append(_OpenTag(name, position, attrs))
            i = i_after
            continue
        if char == "&":
            decoded, i = _decode_entity(text, i, strict)
        else:
            decoded, i = char, i + 1
        out.append(decoded)
        position += utf16_length(decoded)
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# --- Building updates the way Telegram sends them ----------------------------------------------

# Time-based starts: ids grow across test runs too, so a gateway database kept between runs never
# mistakes a new update for one it already stored.
_update_ids = itertools.count(int(time.time() * 1000) % 1_000_000_000)
_incoming_message_ids = itertools.count(1_000_000)
_callback_ids = itertools.count(1)


def next_update_id() -> int:
    return next(_update_ids)


def make_user(
    user_id: int,
    *,
    first_name: str = "Test",
    last_name: str | None = None,
    username: str | None = "test_user",
    language_code: str | None = "en",
    is_bot: bool = False,
) -> JSON:
    user: JSON = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
    if last_name is not None:
        user["last_name"] = last_name
    if username is not None:
        user["username"] = username
    if language_code is not None:
        user["language_code"] = language_code
    return user


def make_chat(chat_id: int | str, user: JSON | None = None) -> JSON:
    """A Chat: private for positive ids (named after `user`), groups/supergroups/channels otherwise."""
    if isinstance(chat_id, str):  # "@channelusername"
        return {
            "id": -1000000000001,
            "type": "channel",
            "title": chat_id.lstrip("@"),
            "username": chat_id[1:],
        }
    if chat_id > 0:
        chat: JSON = {"id": chat_id, "type": "private", "first_name": (user or {}).get("first_name", "Test")}
        for key in ("last_name", "username"):
            if user and key in user:
                chat[key] = user[key]
        return chat
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "type": kind, "title": "Test group"}


def bot_user(token: str = DEFAULT_TOKEN) -> JSON:
    """The bot's own User as getMe returns it; the id is the token's number, as on Telegram."""
    prefix = token.split(":", 1)[0]
    return {
        "id": int(prefix) if prefix.isdigit() else 123456789,
        "is_bot": True,
        "first_name": BOT_FIRST_NAME,
        "username": BOT_USERNAME,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def _incoming_message(
    chat_id: int,
    text: str,
    *,
    user_id: int | None,
    first_name: str,
    username: str | None,
    message_id: int | None,
    date: int | None,
) -> JSON:
    user = make_user(user_id if user_id is not None else chat_id, first_name=first_name, username=username)
    return {
        "message_id": message_id if message_id is not None else next(_incoming_message_ids),
        "from": user,
        "chat": make_chat(chat_id, user),
        "date": date if date is not None else int(time.time()),
        "text": text,
    }


def text_update(
    chat_id: int,
    text: str,
    *,
    user_id: int | None = None,
    first_name: str = "Test",
    username: str | None = "test_user",
    update_id: int | None = None,
    message_id: int | None = None,
    date: int | None = None,
) -> JSON:
    """An update with a text message from a user (user id = chat id unless given: a private chat)."""
    message = _incoming_message(
        chat_id,
        text,
        user_id=user_id,
        first_name=first_name,
        username=username,
        message_id=message_id,
        date=date,
    )
    return {"update_id": update_id if update_id is not None else next_update_id(), "message": message}


def command_update(
    chat_id: int,
    command: str,
    args: str = "",
    *,
    bot_username: str | None = None,
    user_id: int | None = None,
    first_name: str = "Test",
    username: str | None = "test_user",
    update_id: int | None = None,
    message_id: int | None = None,
    date: int | None = None,
) -> JSON:
    """An update with a command ("start" or "/start"), a bot_command entity at offset 0, then `args`."""
    word = "/" + command.lstrip("/") + (f"@{bot_username}" if bot_username else "")
    update = text_update(
        chat_id,
        f"{word} {args}" if args else word,
        user_id=user_id,
        first_name=first_name,
        username=username,
        update_id=update_id,
        message_id=message_id,
        date=date,
    )
    update["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_length(word)}]
    return update


def callback_query_update(
    chat_id: int,
    data: str,
    *,
    message: JSON | None = None,
    message_id: int | None = None,
    message_text: str = "Pick one:",
    reply_markup: JSON | None = None,
    user_id: int | None = None,
    first_name: str = "Test",
    username: str | None = "test_user",
    query_id: str | None = None,
    update_id: int | None = None,
    token: str = DEFAULT_TOKEN,
) -> JSON:
    """An update for a press on an inline button with `data`.

    `message` is the bot's message the keyboard belongs to: pass a sendMessage result (e.g.
    `tg.calls("sendMessage")[-1]["result"]`), or one is made from message_id/message_text/reply_markup."""
    user = make_user(user_id if user_id is not None else chat_id, first_name=first_name, username=username)
    if message is None:
        message = {
            "message_id": message_id if message_id is not None else next(_incoming_message_ids),
            "from": bot_user(token),
            "chat": make_chat(chat_id, user),
            "date": int(time.time()) - 1,
            "text": message_text,
        }
        if reply_markup is not None:
            message["reply_markup"] = reply_markup
    query = {
        "id": query_id if query_id is not None else f"{next(_callback_ids)}{abs(chat_id) % 100000}",
        "from": user,
        "message": copy.deepcopy(message),
        "chat_instance": str(abs(chat_id) * 1_000_003),  # stable per chat, like Telegram's
        "data": data,
    }
    return {"update_id": update_id if update_id is not None else next_update_id(), "callback_query": query}


def post_update(
    webhook_url: str, update: JSON, secret_token: str | None = None, *, timeout: float = 10.0
) -> int:
    """POST an update to a webhook as Telegram does (JSON body, secret header); the HTTP status."""
    headers = {SECRET_HEADER: secret_token} if secret_token is not None else {}
    response = httpx.post(webhook_url, json=update, headers=headers, timeout=timeout)
    return response.status_code


async def apost_update(
    webhook_url: str, update: JSON, secret_token: str | None = None, *, timeout: float = 10.0
) -> int:
    """post_update for async tests (a blocking POST there would stall an app on the same loop)."""
    headers = {SECRET_HEADER: secret_token} if secret_token is not None else {}
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.post(webhook_url, json=update, headers=headers)
    return response.status_code


# --- The fake server ---------------------------------------------------------------------------


@dataclass
class FailRule:
    """The next `remaining` matching calls fail with `kind` (-1: until reset)."""

    method: str  # canonical method name, or "*" for every method
    kind: str
    remaining: int
    retry_after: int
    chat_id: str | None  # only calls for this chat, compared as strings
    hang_seconds: float
    description: str | None


def _coerce(params: dict[str, Any]) -> JSON:
    """Parameters as Telegram reads them, whether they came as a form (strings) or as JSON."""
    out: JSON = {}
    for key, value in params.items():
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                if key in _JSON_PARAMS:
                    value = json.loads(value) if value else None
                elif key in _INT_PARAMS:
                    value = int(value)
                elif key in _FLOAT_PARAMS:
                    number = float(value)
                    value = int(number) if number.is_integer() else number
                elif key in _BOOL_PARAMS:
                    value = value.lower() in ("true", "1")
                elif key == "chat_id" and re.fullmatch(r"-?\d+", value):
                    value = int(value)
        out[key] = value
    return out


def _error_body(code: int, description: str, parameters: JSON | None = None) -> JSON:
    body: JSON = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


Handler = Callable[[JSON], Awaitable[Any]]


class _Server(uvicorn.Server):
    """uvicorn, ending hanging calls and long polls first on SIGINT/SIGTERM, so the CLI exits at once."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


class FakeTelegram:
    """A fake Bot API on a free loopback port; a context manager that runs it in a background thread.

    `Bot(tg.token, base_url=tg.base_url)` talks to it. Every call is recorded (failed ones too),
    failures can be injected per method, updates queued for getUpdates. Safe to use from any thread;
    in async tests use the `async_` waiting helpers so the event loop keeps running."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        hang_seconds: float = DEFAULT_HANG_SECONDS,
        strict_html: bool = True,
        allow_http_webhook: bool = True,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.latency = latency  # seconds added to every API call, to make benchmarks realistic
        self.hang_seconds = hang_seconds
        self.strict_html = strict_html
        # Telegram wants https:// webhooks; tests point it at a plain-HTTP loopback gateway.
        self.allow_http_webhook = allow_http_webhook
        self.bot = bot_user(token)
        self._lock = threading.Condition()
        self._calls: list[JSON] = []
        self._rules: list[FailRule] = []
        self._updates: list[JSON] = []
        self._last_update_id = 0
        self._messages: dict[tuple[str, int], JSON] = {}
        self._deleted: set[tuple[str, int]] = set()
        self._next_message_id = 1
        self._webhook: JSON = {"url": "", "secret_token": None, "allowed_updates": None}
        self._poll_generation = 0
        # Set while the server runs; these belong to the server's event loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._updates_event: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        # In-process, uvicorn must not reconfigure the test run's logging; the CLI uses its default.
        self._log_config: dict[str, Any] | None = None
        self._thread: threading.Thread | None = None
        self._handlers: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "getUpdates": self._get_updates,
                "sendMessage": self._send_message,
                "sendChatAction": self._send_chat_action,
                "answerCallbackQuery": self._answer_callback_query,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
            }.items()
        }
        self.app = self._build_app()

    # --- Addresses -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For Bot(token, base_url=...) and the gateway's TELEGRAM_API_URL: PTB appends the token."""
        return f"{self.url}/bot"

    @property
    def api_url(self) -> str:
        """base_url + token: append "/sendMessage" etc. for raw HTTP calls."""
        return f"{self.base_url}{self.token}"

    @property
    def control_url(self) -> str:
        return f"{self.url}/_fake"

    # --- Life cycle ----------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])  # binding ourselves: port 0 becomes a free port, no race
        return sock

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            log_config=self._log_config,
            lifespan="on",
            # Hanging ("timeout") calls must not hold up a shutdown for long.
            timeout_graceful_shutdown=1,
        )
        return _Server(config, on_exit=self._request_stop)

    def _request_stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._signal_stop)

    def start(self) -> FakeTelegram:
        """Serve in a background thread; returns once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("FakeTelegram is already running")
        sock = self._bind()
        self._server = server = self._make_server()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="fake-telegram", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Telegram server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving: hanging calls and long polls end at once, then the thread exits."""
        if self._thread is None or self._server is None:
            return
        self._request_stop()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None
        self._server = None

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM (the CLI); prints one JSON line once listening."""
        self._log_config = uvicorn.config.LOGGING_CONFIG
        sock = self._bind()
        server = self._make_server()
        print(
            json.dumps(
                {
                    "event": "listening",
                    "port": self.port,
                    "base_url": self.base_url,
                    "control_url": self.control_url,
                    "token": self.token,
                }
            ),
            flush=True,
        )
        server.run(sockets=[sock])

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self._updates_event = asyncio.Event()
        self._stopping = asyncio.Event()
        try:
            yield
        finally:
            self._signal_stop()
            self._loop = None

    def _signal_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        self._pulse_updates()

    def _pulse_updates(self) -> None:
        """Wake every waiting getUpdates (runs on the server's loop)."""
        old = self._updates_event
        self._updates_event = asyncio.Event()
        if old is not None:
            old.set()

    def _notify_updates(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._pulse_updates)

    # --- Inspecting and driving (Python API; the control API maps onto these) -------------------

    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[JSON]:
        """Recorded calls, oldest first (copies), optionally of one method and only (un)successful.

        Each: {"seq", "method", "params", "status" (HTTP, None for a hung call), "ok", "outcome"
        ("ok", "retry_after", "server_error", "timeout", "bad_request", "forbidden", "unauthorized",
        "not_found", "conflict"), "injected", "description", "result", "at" (time.time())}."""
        with self._lock:
            return copy.deepcopy([c for c in self._calls if _matches(c, method, ok)])

    def count_calls(self, method: str | None = None, *, ok: bool | None = None) -> int:
        """How many calls calls() would return, without copying them (cheap to poll)."""
        with self._lock:
            return sum(1 for c in self._calls if _matches(c, method, ok))

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSON]:
        """The Messages successfully sent with sendMessage (what the bot returned), oldest first."""
        return [
            c["result"]
            for c in self.calls("sendMessage", ok=True)
            if chat_id is None or str(c["result"]["chat"]["id"]) == str(chat_id)
        ]

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[JSON]:
        """Block until `count` successful calls of `method` are recorded; all of them (copies).

        Never call this from a coroutine whose loop also runs the code under test: use
        `async_wait_for_calls` there."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                done = [c for c in self._calls if _matches(c, method, True)]
                if len(done) >= count:
                    return copy.deepcopy(done)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CallsTimeout(_timeout_message(method, count, timeout, self._calls))
                self._lock.wait(remaining)

    async def async_wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[JSON]:
        """wait_for_calls that lets the event loop run meanwhile."""
        deadline = time.monotonic() + timeout
        while self.count_calls(method, ok=True) < count:
            if time.monotonic() > deadline:
                raise CallsTimeout(_timeout_message(method, count, timeout, self.calls()))
            await asyncio.sleep(0.005)
        return self.calls(method, ok=True)

    def fail(
        self,
        method: str,
        kind: str = "retry_after",
        times: int = 1,
        *,
        retry_after: int = 1,
        chat_id: int | str | None = None,
        hang_seconds: float | None = None,
        description: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` ("*": any method; times=-1: until reset) fail.

        kind: "retry_after" (429 with parameters.retry_after), "server_error" (500), "timeout"
        (no answer for hang_seconds, default 30, or until the server stops), "bad_request" (400),
        "forbidden" (403 "Forbidden: bot was blocked by the user"). `chat_id` limits it to calls for
        that chat; `description` replaces the default error text. Rules apply in the order added."""
        if kind not in FAIL_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; use one of {', '.join(FAIL_KINDS)}")
        canonical = method if method == "*" else self._handlers.get(method.lower(), (method, None))[0]
        rule = FailRule(
            method=canonical,
            kind=kind,
            remaining=int(times),
            retry_after=int(retry_after),
            chat_id=None if chat_id is None else str(chat_id),
            hang_seconds=self.hang_seconds if hang_seconds is None else float(hang_seconds),
            description=description,
        )
        with self._lock:
            self._rules.append(rule)

    def queue_update(self, update: JSON) -> int:
        """Queue an update for getUpdates (an update_id is assigned if missing); its update_id."""
        update = copy.deepcopy(update)
        with self._lock:
            if "update_id" not in update:
                highest = max([self._last_update_id, *(u["update_id"] for u in self._updates)])
                update["update_id"] = highest + 1
            self._last_update_id = max(self._last_update_id, int(update["update_id"]))
            self._updates.append(update)
            self._updates.sort(key=lambda u: u["update_id"])
        self._notify_updates()
        return int(update["update_id"])

    def queue_updates(self, updates: Iterable[JSON]) -> list[int]:
        return [self.queue_update(u) for u in updates]

    def pending_updates(self) -> list[JSON]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._lock:
            return copy.deepcopy(self._updates)

    @property
    def webhook(self) -> JSON:
        """{"url", "secret_token", "allowed_updates"} as last set (url "" when none)."""
        with self._lock:
            return copy.deepcopy(self._webhook)

    def deliver_update(self, update: JSON, *, timeout: float = 10.0) -> int:
        """POST an update to the webhook registered with setWebhook, with its secret; the status."""
        hook = self.webhook
        if not hook["url"]:
            raise RuntimeError("no webhook is set (setWebhook was not called, or deleteWebhook was)")
        return post_update(hook["url"], update, hook["secret_token"], timeout=timeout)

    async def async_deliver_update(self, update: JSON, *, timeout: float = 10.0) -> int:
        hook = self.webhook
        if not hook["url"]:
            raise RuntimeError("no webhook is set (setWebhook was not called, or deleteWebhook was)")
        return await apost_update(hook["url"], update, hook["secret_token"], timeout=timeout)

    def reset(self) -> None:
        """Forget calls, rules, queued updates, messages and the webhook (the server keeps running)."""
        with self._lock:
            self._calls.clear()
            self._rules.clear()
            self._updates.clear()
            self._messages.clear()
            self._deleted.clear()
            self._webhook = {"url": "", "secret_token": None, "allowed_updates": None}
            self._lock.notify_all()
        self._notify_updates()

    # --- Recording and failure rules -----------------------------------------------------------

    def _record(
        self,
        method: str,
        params: JSON,
        *,
        status: int | None,
        outcome: str,
        injected: bool = False,
        description: str | None = None,
        result: Any = None,
    ) -> None:
        with self._lock:
            self._calls.append(
                {
                    "seq": len(self._calls) + 1,
                    "method": method,
                    "params": copy.deepcopy(params),
                    "status": status,
                    "ok": outcome == "ok",
                    "outcome": outcome,
                    "injected": injected,
                    "description": description,
                    "result": copy.deepcopy(result),
                    "at": time.time(),
                }
            )
            self._lock.notify_all()

    def _take_rule(self, method: str, params: JSON) -> FailRule | None:
        chat = params.get("chat_id")
        with self._lock:
            for rule in self._rules:
                if rule.method not in (method, "*") or rule.remaining == 0:
                    continue
                if rule.chat_id is not None and str(chat) != rule.chat_id:
                    continue
                if rule.remaining > 0:
                    rule.remaining -= 1
                return copy.copy(rule)
        return None

    async def _injected(self, method: str, params: JSON, rule: FailRule) -> Response:
        if rule.kind == "timeout":
            # Recorded on arrival: the client has given up long before this call would end.
            self._record(method, params, status=None, outcome="timeout", injected=True)
            if self._stopping is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), rule.hang_seconds)
            return JSONResponse(_error_body(504, "Gateway Timeout"), status_code=504)
        parameters: JSON | None = None
        if rule.kind == "retry_after":
            code, text = 429, f"Too Many Requests: retry after {rule.retry_after}"
            parameters = {"retry_after": rule.retry_after}
        elif rule.kind == "server_error":
            code, text = 500, "Internal Server Error"
        elif rule.kind == "bad_request":
            code, text = 400, "Bad Request: chat not found"
        else:
            code, text = 403, "Forbidden: bot was blocked by the user"
        text = rule.description or text
        self._record(method, params, status=code, outcome=rule.kind, injected=True, description=text)
        return JSONResponse(_error_body(code, text, parameters), status_code=code)

    # --- HTTP ----------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        routes = [
            Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
            Route("/_fake/calls", self._control_calls, methods=["GET"]),
            Route("/_fake/fail", self._control_fail, methods=["POST"]),
            Route("/_fake/updates", self._control_updates, methods=["GET", "POST"]),
            Route("/_fake/deliver", self._control_deliver, methods=["POST"]),
            Route("/_fake/webhook", self._control_webhook, methods=["GET"]),
            Route("/_fake/reset", self._control_reset, methods=["POST"]),
            Route("/_fake/health", self._control_health, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self._lifespan)

    async def _read_params(self, request: Request) -> JSON:
        params: dict[str, Any] = dict(request.query_params)
        content_type = request.headers.get("content-type", "").lower()
        body = await request.body()
        if "application/json" in content_type:
            if body.strip():
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise ApiError(400, "Bad Request: can't parse JSON object") from exc
                if not isinstance(data, dict):
                    raise ApiError(400, "Bad Request: JSON object expected")
                params.update(data)
        elif "application/x-www-form-urlencoded" in content_type:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif "multipart/form-data" in content_type:
            form = await request.form()
            for key, value in form.multi_items():
                if isinstance(value, str):
                    params[key] = value
                else:  # an uploaded file: keep what a test could assert on
                    content = await value.read()
                    params[key] = {"filename": value.filename, "size": len(content)}
        return _coerce(params)

    async def _api(self, request: Request) -> Response:
        method_name = request.path_params["method"]
        name, handler = self._handlers.get(method_name.lower(), (method_name, None))
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            self._record(name, {}, status=exc.code, outcome=exc.outcome, description=exc.description)
            return JSONResponse(_error_body(exc.code, exc.description), status_code=exc.code)
        if request.path_params["token"] != self.token:
            self._record(name, params, status=401, outcome="unauthorized", description="Unauthorized")
            return JSONResponse(_error_body(401, "Unauthorized"), status_code=401)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        rule = self._take_rule(name, params)
        if rule is not None:
            return await self._injected(name, params, rule)
        try:
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = await handler(params)
        except ApiError as exc:
            self._record(name, params, status=exc.code, outcome=exc.outcome, description=exc.description)
            return JSONResponse(_error_body(exc.code, exc.description, exc.parameters), status_code=exc.code)
        self._record(name, params, status=200, outcome="ok", result=result)
        return JSONResponse({"ok": True, "result": result})

    # --- Control API ---------------------------------------------------------------------------

    async def _control_calls(self, request: Request) -> Response:
        ok_param = request.query_params.get("ok")
        ok = None if ok_param is None else ok_param.lower() in ("1", "true", "yes")
        return JSONResponse(self.calls(request.query_params.get("method"), ok=ok))

    async def _control_fail(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            self.fail(
                str(body["method"]),
                str(body.get("kind", "retry_after")),
                int(body.get("times", 1)),
                retry_after=int(body.get("retry_after", 1)),
                chat_id=body.get("chat_id"),
                hang_seconds=body.get("hang_seconds"),
                description=body.get("description"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"ok": False, "error": f"bad rule: {exc!s}"}, status_code=400)
        return JSONResponse({"ok": True})

    async def _control_updates(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(self.pending_updates())
        body = await _json_body(request)
        updates = body if isinstance(body, list) else body.get("updates", [body])
        if not all(isinstance(u, dict) for u in updates):
            return JSONResponse({"ok": False, "error": "an update is a JSON object"}, status_code=400)
        return JSONResponse({"ok": True, "update_ids": self.queue_updates(updates)})

    async def _control_deliver(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            status = await self.async_deliver_update(body)
        except RuntimeError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=409)
        except httpx.HTTPError as exc:
            return JSONResponse({"ok": False, "error": f"webhook unreachable: {exc!r}"}, status_code=502)
        return JSONResponse({"ok": True, "status": status})

    async def _control_webhook(self, request: Request) -> Response:
        return JSONResponse(self.webhook)

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _control_health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "token": self.token, "base_url": self.base_url})

    # --- Bot API methods -----------------------------------------------------------------------

    async def _get_me(self, params: JSON) -> JSON:
        return copy.deepcopy(self.bot)

    async def _set_webhook(self, params: JSON) -> bool:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        allowed = params.get("allowed_updates")
        if (
            url
            and not url.startswith("https://")
            and not (self.allow_http_webhook and url.startswith("http://"))
        ):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if allowed is not None and not isinstance(allowed, list):
            raise ApiError(400, "Bad Request: can't parse allowed updates")
        with self._lock:
            self._webhook = {"url": url, "secret_token": secret if url else None, "allowed_updates": allowed}
            if params.get("drop_pending_updates"):
                self._updates.clear()
        self._notify_updates()  # a waiting getUpdates now conflicts with the webhook
        return True

    async def _delete_webhook(self, params: JSON) -> bool:
        with self._lock:
            self._webhook = {"url": "", "secret_token": None, "allowed_updates": None}
            if params.get("drop_pending_updates"):
                self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSON) -> JSON:
        with self._lock:
            info: JSON = {
                "url": self._webhook["url"],
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
            if self._webhook["url"]:
                info["max_connections"] = 40
                if self._webhook["allowed_updates"] is not None:
                    info["allowed_updates"] = list(self._webhook["allowed_updates"])
        return info

    async def _get_updates(self, params: JSON) -> list[JSON]:
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        with self._lock:
            if self._webhook["url"]:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            if offset > 0:  # confirms every update before it
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:  # -N: only the last N updates; the ones before are forgotten
                self._updates = self._updates[offset:]
            self._poll_generation += 1
            generation = self._poll_generation
        self._pulse_updates()  # an older long poll still waiting is terminated (409), as on Telegram
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._updates_event
            with self._lock:
                batch = copy.deepcopy(self._updates[:limit])
                superseded = generation != self._poll_generation
                webhook_set = bool(self._webhook["url"])
            stopping = self._stopping is not None and self._stopping.is_set()
            if batch or stopping:
                return batch
            if superseded:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if webhook_set:
                raise ApiError(409, "Conflict: terminated by setWebhook request")
            remaining = deadline - loop.time()
            if remaining <= 0 or event is None:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _chat_key(self, params: JSON) -> str:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(chat_id, int) or (
            isinstance(chat_id, str) and re.fullmatch(r"@[A-Za-z0-9_]{4,32}", chat_id)
        ):
            return str(chat_id)
        raise ApiError(400, "Bad Request: chat not found")

    def _render(self, params: JSON) -> tuple[str, list[JSON] | None]:
        """Visible text and entities of params["text"] as Telegram would show it; 400s like Telegram."""
        text = params.get("text")
        if text is None or text == "":
            raise ApiError(400, "Bad Request: message text is empty")
        text = str(text)
        parse_mode = str(params.get("parse_mode") or "")
        entities: list[JSON] | None = params.get("entities")
        if parse_mode.lower() == "html":
            try:
                text, entities = parse_html(text, strict=self.strict_html)
            except EntityParseError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from exc
        # Markdown and MarkdownV2 are passed through unchecked (Kefu sends HTML).
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_length(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        return text, entities or None

    def _check_markup(self, markup: Any) -> JSON | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup  # a reply keyboard, ForceReply or ReplyKeyboardRemove: not checked further
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise ApiError(
                400,
                'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays',
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise ApiError(
                        400, "Bad Request: can't parse inline keyboard button: Text must be non-empty"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= CALLBACK_DATA_LIMIT:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if len(set(button) - {"text"}) != 1:
                    raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
        return markup

    async def _send_message(self, params: JSON) -> JSON:
        chat = self._chat_key(params)
        text, entities = self._render(params)
        markup = self._check_markup(params.get("reply_markup"))
        with self._lock:
            message_id = self._next_message_id
            self._next_message_id += 1
            message: JSON = {
                "message_id": message_id,
                "from": copy.deepcopy(self.bot),
                "chat": make_chat(params["chat_id"]),
                "date": int(time.time()),
                "text": text,
            }
            if entities:
                message["entities"] = entities
            if markup and "inline_keyboard" in markup:  # Telegram echoes only inline keyboards
                message["reply_markup"] = markup
            self._messages[(chat, message_id)] = copy.deepcopy(message)
        return message

    def _find_message(self, params: JSON, action: str) -> tuple[str, int, JSON | None]:
        chat = self._chat_key(params)
        if params.get("message_id") in (None, ""):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message_id = int(params["message_id"])
        with self._lock:
            if (chat, message_id) in self._deleted:
                raise ApiError(400, f"Bad Request: message to {action} not found")
            # A message this fake never sent (e.g. made by callback_query_update) is taken to exist.
            return chat, message_id, copy.deepcopy(self._messages.get((chat, message_id)))

    def _edited(self, chat: str, message_id: int, params: JSON, old: JSON | None, changes: JSON) -> JSON:
        message = old or {
            "message_id": message_id,
            "from": copy.deepcopy(self.bot),
            "chat": make_chat(params["chat_id"]),
            "date": int(time.time()),
        }
        if old is not None and all(old.get(k) == v for k, v in changes.items()):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message",
            )
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        with self._lock:
            self._messages[(chat, message_id)] = copy.deepcopy(message)
        return message

    async def _edit_message_text(self, params: JSON) -> JSON | bool:
        text, entities = self._render(params)
        markup = self._check_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True
        chat, message_id, old = self._find_message(params, "edit")
        changes = {"text": text, "entities": entities, "reply_markup": markup}
        return self._edited(chat, message_id, params, old, changes)

    async def _edit_message_reply_markup(self, params: JSON) -> JSON | bool:
        markup = self._check_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True
        chat, message_id, old = self._find_message(params, "edit")
        return self._edited(chat, message_id, params, old, {"reply_markup": markup})

    async def _delete_message(self, params: JSON) -> bool:
        chat, message_id, _ = self._find_message(params, "delete")
        with self._lock:
            self._messages.pop((chat, message_id), None)
            self._deleted.add((chat, message_id))
        return True

    async def _send_chat_action(self, params: JSON) -> bool:
        self._chat_key(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _answer_callback_query(self, params: JSON) -> bool:
        if not params.get("callback_query_id"):
            raise ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text") or "")) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True


def _matches(call: JSON, method: str | None, ok: bool | None) -> bool:
    return (method is None or call["method"] == method) and (ok is None or call["ok"] == ok)


def _timeout_message(method: str, count: int, timeout: float, calls: list[JSON]) -> str:
    lines = [
        f"  #{c['seq']} {c['method']} -> {c['outcome']} ({c['status']}) "
        f"{json.dumps(c['params'], ensure_ascii=False)[:300]}"
        for c in calls
    ]
    return f"waited {timeout:g} s for {count} successful {method} call(s); recorded calls:\n" + (
        "\n".join(lines) or "  (none)"
    )


async def _json_body(request: Request) -> Any:
    body = await request.body()
    return json.loads(body) if body.strip() else {}


# --- The fake in another process ---------------------------------------------------------------


class FakeTelegramClient:
    """The control API of a fake running elsewhere, with the same methods as FakeTelegram."""

    def __init__(self, url: str, token: str = DEFAULT_TOKEN) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=f"{self.url}/_fake", timeout=10.0)

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{self.token}"

    @property
    def control_url(self) -> str:
        return f"{self.url}/_fake"

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json()

    def calls(self, method: str | None = None, *, ok: bool | None = None) -> list[JSON]:
        query: dict[str, str] = {}
        if method is not None:
            query["method"] = method
        if ok is not None:
            query["ok"] = "true" if ok else "false"
        return list(self._ok(self._http.get("/calls", params=query)))

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSON]:
        return [
            c["result"]
            for c in self.calls("sendMessage", ok=True)
            if chat_id is None or str(c["result"]["chat"]["id"]) == str(chat_id)
        ]

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[JSON]:
        deadline = time.monotonic() + timeout
        while True:
            done = self.calls(method, ok=True)
            if len(done) >= count:
                return done
            if time.monotonic() > deadline:
                raise CallsTimeout(_timeout_message(method, count, timeout, self.calls()))
            time.sleep(0.05)

    async def async_wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[JSON]:
        deadline = time.monotonic() + timeout
        while True:
            done = await asyncio.to_thread(self.calls, method, ok=True)
            if len(done) >= count:
                return done
            if time.monotonic() > deadline:
                raise CallsTimeout(
                    _timeout_message(method, count, timeout, await asyncio.to_thread(self.calls))
                )
            await asyncio.sleep(0.05)

    def fail(
        self,
        method: str,
        kind: str = "retry_after",
        times: int = 1,
        *,
        retry_after: int = 1,
        chat_id: int | str | None = None,
        hang_seconds: float | None = None,
        description: str | None = None,
    ) -> None:
        rule: JSON = {"method": method, "kind": kind, "times": times, "retry_after": retry_after}
        for key, value in (
            ("chat_id", chat_id),
            ("hang_seconds", hang_seconds),
            ("description", description),
        ):
            if value is not None:
                rule[key] = value
        self._ok(self._http.post("/fail", json=rule))

    def queue_update(self, update: JSON) -> int:
        return int(self._ok(self._http.post("/updates", json=update))["update_ids"][0])

    def queue_updates(self, updates: Iterable[JSON]) -> list[int]:
        return [int(i) for i in self._ok(self._http.post("/updates", json=list(updates)))["update_ids"]]

    def pending_updates(self) -> list[JSON]:
        return list(self._ok(self._http.get("/updates")))

    @property
    def webhook(self) -> JSON:
        return dict(self._ok(self._http.get("/webhook")))

    def deliver_update(self, update: JSON, *, timeout: float = 10.0) -> int:
        return int(self._ok(self._http.post("/deliver", json=update, timeout=timeout + 5))["status"])

    def reset(self) -> None:
        self._ok(self._http.post("/reset"))

    def close(self) -> None:
        self._http.close()


class FakeTelegramProcess(FakeTelegramClient):
    """`python -m tests.support.fakes.telegram_api` in a subprocess, as a context manager, with the
    control API's methods."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        port: int = 0,
        latency: float = 0.0,
        python: str = sys.executable,
        extra_args: list[str] | None = None,
    ) -> None:
        command = [python, "-m", "tests.support.fakes.telegram_api", "--port", str(port), "--token", token]
        if latency:
            command += ["--latency", str(latency)]
        self.command = command + (extra_args or [])
        self.process: subprocess.Popen[str] | None = None
        self.port = port
        super().__init__(f"http://127.0.0.1:{port}", token)

    def start(self) -> FakeTelegramProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=None, text=True, env=env
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the CLI prints one JSON line once it listens
        if not line:
            code = self.process.wait(timeout=5)
            raise RuntimeError(f"the fake Telegram process exited ({code}) before listening")
        info = json.loads(line)
        self.port = int(info["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        self._http.close()
        self._http = httpx.Client(base_url=f"{self.url}/_fake", timeout=10.0)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        self.close()

    def __enter__(self) -> FakeTelegramProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API server for Kefu's tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port, printed on start")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    parser.add_argument("--hang-seconds", type=float, default=DEFAULT_HANG_SECONDS)
    parser.add_argument("--lenient-html", action="store_true", help="accept a stray '&' as Telegram does")
    args = parser.parse_args(argv)
    FakeTelegram(
        args.token,
        host=args.host,
        port=args.port,
        latency=args.latency,
        hang_seconds=args.hang_seconds,
        strict_html=not args.lenient_html,
    ).serve_forever()


if __name__ == "__main__":
    main()
