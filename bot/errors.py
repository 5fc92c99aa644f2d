"""Kefu's exceptions: each knows its HTTP status; one handler turns them into `{"error": ...}` JSON."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class KefuError(Exception):
    """Base of Kefu's errors; the message says what was wrong and what to do about it."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(KefuError):
    """The request is well-formed but a value in it is not acceptable."""

    status_code = 400


class Unauthorized(KefuError):
    """No valid console login."""

    status_code = 401


class Forbidden(KefuError):
    """Logged in, but this account may not do this."""

    status_code = 403


class NotFound(KefuError):
    status_code = 404


class Conflict(KefuError):
    status_code = 409


class TooManyRequests(KefuError):
    status_code = 429


class ServiceUnavailable(KefuError):
    """A part Kefu depends on (Rasa, the action server, the database) cannot be reached."""

    status_code = 503


def error_response(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


# Pydantic error types -> a phrase that completes "<field> ...".
_TYPE_PHRASES = {
    "missing": "is missing",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "dict_type": "must be a JSON object",
    "list_type": "must be a list",
}


def _field_name(loc: Sequence[Any]) -> str:
    where = loc[0] if loc else "body"
    parts = [str(part) for part in loc[1:]]
    if where == "body":
        return ".".join(parts) if parts else "the request body"
    name = ".".join(parts) or str(where)
    return f"{name} ({where} parameter)" if where in ("query", "path", "header", "cookie") else name


def describe_validation_error(error: dict[str, Any]) -> str:
    """One human-readable sentence for one FastAPI/pydantic validation error."""
    kind = error.get("type", "")
    loc = tuple(error.get("loc", ()))
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "invalid JSON")
        position = loc[1] if len(loc) > 1 else "?"
        return f"the request body is not valid JSON ({detail} at character {position}); send a JSON object"
    if loc in (("body",), ()) and kind in ("missing", "model_attributes_type", "dict_type"):
        return "the request body must be a JSON object sent with Content-Type: application/json"
    name = _field_name(loc)
    if kind in _TYPE_PHRASES:
        return f"{name} {_TYPE_PHRASES[kind]}"
    message = str(error.get("msg", "is not valid"))
    # Our own validators raise ValueError; pydantic prefixes those with "Value error, ".
    message = message.removeprefix("Value error, ")
    return f"{name}: {message[:1].lower()}{message[1:]}"


async def _kefu_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KefuError)
    return error_response(exc.status_code, exc.message)


async def _validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    messages = list(dict.fromkeys(describe_validation_error(error) for error in exc.errors()))
    return error_response(422, "; ".join(messages) or "the request is not valid")


_HTTP_MESSAGES = {
    404: "nothing here: check the address",
    405: "this address does not accept that method",
    413: "the request body is too large",
}


async def _http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    response = error_response(exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


DATABASE_DOWN_TEXT = (
    "Sorry, we can't take messages for a moment. Nothing you sent before is lost; please send this "
    "one again in a minute (the chat widget does it by itself)."
)
DATABASE_RETRY_AFTER_SECONDS = 15


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The database is unreachable (down, refusing connections, pool exhausted): 503, and say so."""
    logger.error(
        "database unavailable on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0]
    )
    response = error_response(503, DATABASE_DOWN_TEXT)
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "something went wrong on our side; please try again in a minute")


def register_error_handlers(app: FastAPI) -> None:
    """Make every error leave the app as `{"error": "<what was wrong and what to do>"}`."""
    app.add_exception_handler(KefuError, _kefu_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    # OperationalError: connection refused or lost; InterfaceError: a closed connection;
    # TimeoutError: no pooled connection came free in time.
    for database_error in (OperationalError, InterfaceError, SQLAlchemyTimeoutError):
        app.add_exception_handler(database_error, _database_error_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)
