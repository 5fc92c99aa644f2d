"""Keeps secrets out of the logs: every log record is scrubbed of the configured secret values.

Secrets reach logs by accident, mostly inside addresses: httpx logs each request's URL at INFO,
Telegram's Bot API URLs hold the bot token (`.../bot<token>/sendMessage`), Rasa's HTTP API is
called with `?token=`, and a database error may quote its connection URL. `install(settings)` makes
every record this process creates go through `SecretRedactor` before any handler sees it (a log
record factory, so loggers and handlers added later are covered too): its message, its arguments,
its traceback and its stack are searched for SECRET_KEY, RASA_TOKEN, TELEGRAM_BOT_TOKEN,
TELEGRAM_WEBHOOK_SECRET and the passwords in DATABASE_URL, TRACKER_STORE_URL and REDIS_URL
(as written and percent-encoded), and each one found is replaced by `[redacted]`.

Web visitor ids are secrets too (each is the only key to a chat), but there is one per visitor, so
they are recognised by where they stand instead: a `session=` parameter in a URL (uvicorn logs the
URL of every WebSocket it accepts, query string included) and a `kefu.visitor.` subprotocol.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from bot.settings import PLACEHOLDER_SECRET, Settings

REDACTED = "[redacted]"
# Shorter values would blank out ordinary words all over the logs; a secret that short protects
# nothing anyway.
MIN_SECRET_CHARS = 6
# A visitor id in a URL's query string (as written or percent-encoded) or in the live socket's
# subprotocol; the name is kept, so a log still shows that an id was there.
_VISITOR_ID = re.compile(r"(\bsession=|kefu\.visitor\.)[A-Za-z0-9_~.%+-]+")


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def secret_values(settings: Settings) -> list[str]:
    """The values that must never appear in a log line, in every spelling they may be logged in."""
    values = [
        settings.secret_key,
        settings.rasa_token,
        settings.action_server_token,
        settings.smtp_password,
        settings.telegram_bot_token,
        settings.telegram_webhook_secret,
    ]
    # A bot token is "<bot id>:<secret>"; the id is public, the part after the colon is not.
    values.append(settings.telegram_bot_token.partition(":")[2])
    for url in (settings.database_url, settings.tracker_store_url, settings.redis_url):
        password = _url_password(url)
        if password:
            values += [password, unquote(password)]
    found: set[str] = set()
    for value in values:
        if not value or value == PLACEHOLDER_SECRET:
            continue
        # As written, and as it looks inside a URL (a query string, a path).
        for spelling in (value, quote(value, safe=""), quote_plus(value), quote(value)):
            if len(spelling) >= MIN_SECRET_CHARS:
                found.add(spelling)
    return sorted(found, key=len, reverse=True)


class SecretRedactor(logging.Filter):
    """A logging filter that replaces secret values in a record by `[redacted]`; it never drops one."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        ordered = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
        self._pattern = (
            re.compile(f"{self._secrets.pattern}|{_VISITOR_ID.pattern}") if self._secrets else _VISITOR_ID
        )

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        return _VISITOR_ID.sub(lambda match: match.group(1) + REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it later, as it always does
            message = None
        if message is not None and self._pattern.search(message):
            record.msg, record.args = self.redact(message), None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is only ever shown redacted.
            formatted = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if self._pattern.search(formatted):
                record.exc_text = self.redact(formatted)
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_active: SecretRedactor | None = None
_wrapped_factory: Callable[..., logging.LogRecord] | None = None


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _wrapped_factory is not None
    record = _wrapped_factory(*args, **kwargs)
    if _active is not None:
        _active.filter(record)
    return record


def install(settings: Settings) -> SecretRedactor:
    """Scrub this process's log records of the secrets in `settings` (again: the newest settings win)."""
    global _active, _wrapped_factory
    redactor = SecretRedactor(secret_values(settings))
    if logging.getLogRecordFactory() is not _redacting_factory:
        _wrapped_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)
    _active = redactor
    return redactor
