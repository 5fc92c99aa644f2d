"""The gateway's ASGI middleware: request body limits, security headers on pages, history rate limits."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.widget_ratelimit import WebRateLimits
from bot.errors import error_response


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive` while a route reads a body over the limit; answered as 413 JSON."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is too large; the limit is {limit} bytes")
        self.limit = limit


class BodyLimit:
    """One body-size limit for every route: `max_bytes`, or a smaller one under a path prefix.

    The declared Content-Length is checked when the route first asks for the body, before a byte of
    it is read, and the bytes are counted as they stream in (chunked bodies declare no length). A
    route that checks the login first (console routes) therefore answers 401 to an anonymous
    request, whatever body it carries; the body is never read.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        smaller: Sequence[tuple[str, int]] = (),
        login_first: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.login_first = tuple(login_first)
        self.max_bytes = max_bytes
        self.smaller = list(smaller)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.smaller:
            if path.startswith(prefix):
                return min(limit, self.max_bytes)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        received = 0
        started = False
        if declared.isdigit() and int(declared) > limit and not scope["path"].startswith(self.login_first):
            # Routes without a login to check first: refused before the app runs at all.
            await error_response(413, f"the request body is {declared} bytes; the limit is {limit}")(
                scope, receive, send
            )
            return

        async def counted_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > limit:
                raise RequestBodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestBodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except RequestBodyTooLarge as too_large:
            # Normally the app's error handler answers; this is for a body read outside a route.
            if started:
                raise
            await error_response(413, str(too_large.detail))(scope, receive, send)


# Pages load only our own scripts, styles and API; nothing may frame them.
DEFAULT_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
PAGE_POLICIES = {
    # The demo shop styles itself inline (a <style> block), and so does the widget in its shadow root.
    "/widget/demo.html": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    # FastAPI's API docs (development only) load Swagger UI from its CDN and start it inline.
    "/docs": (
        "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
        "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


class PageSecurityHeaders:
    """Give every HTML response a Content-Security-Policy (unless its route set its own) and nosniff.

    Routes such as the consoles set a policy of their own; static pages (the demo shop) and pages
    of libraries (the API docs) get theirs here, so no page goes out without one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = PAGE_POLICIES.get(scope["path"], DEFAULT_PAGE_POLICY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    if "content-security-policy" not in headers:
                        headers["Content-Security-Policy"] = policy
                    if "x-content-type-options" not in headers:
                        headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def too_many_history_reads(retry_after: int, subject: str, limit: int) -> str:
    return (
        f"too many history requests from {subject} in a minute (the limit is {limit}); "
        f"try again in {retry_after} seconds"
    )


class HistoryRateLimit:
    """A rate limit on the widget's GET /api/web/history, per visitor id and per client address.

    Without it anyone can poll any number of visitor ids as fast as the database answers. The
    route lives with the widget's channel; the limit is applied here, before the route runs.
    """

    def __init__(self, app: ASGIApp, path: str, limits: WebRateLimits) -> None:
        self.app = app
        self.path = path
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        visitor = (query.get("session") or [""])[0]
        client = scope.get("client")
        refusal = await self.limits.check("history", visitor, client[0] if client else None)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        seconds = refusal.retry_after_seconds
        # retry_after is in the body too, as for messages: a page on another site cannot read the header.
        response = JSONResponse(
            {
                "error": too_many_history_reads(seconds, refusal.limit.subject, refusal.limit.limit),
                "retry_after": seconds,
            },
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )
        await response(scope, receive, send)
