"""The gateway's ASGI app factory: `uvicorn bot.web.app:create_app --factory`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bot.channels import widget, widget_live
from bot.channels.telegram import channel as telegram_channel
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.widget_ratelimit import history_rate_limits
from bot.crm.db import database_ok, make_engine, make_sessionmaker
from bot.errors import register_error_handlers
from bot.live import LiveHub
from bot.logsafe import install as redact_secrets_in_logs
from bot.rasa_client import HEALTH_TIMEOUT_SECONDS, RasaClient
from bot.scheduler import Scheduler
from bot.settings import Settings, get_settings
from bot.web.middleware import BodyLimit, HistoryRateLimit, PageSecurityHeaders
from bot.web.routes import auth, console, dashboard, kb, pages, replies, tickets, value
from knowledge_base import embedding
from knowledge_base.live import LiveIndex

STATIC_DIR = Path(__file__).resolve().parent / "static"


class PathScopedCORS:
    """CORS for the web widget's API only (sites embedding the widget); other routes stay same-origin."""

    def __init__(self, app: ASGIApp, path_prefix: str, allow_origins: list[str]) -> None:
        self.app = app
        self.path_prefix = path_prefix
        self.cors = CORSMiddleware(
            app,
            allow_origins=allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
            allow_credentials=False,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.path_prefix):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _database_check(factory: sessionmaker[Session]) -> bool:
    try:
        return await asyncio.wait_for(run_in_threadpool(database_ok, factory), HEALTH_TIMEOUT_SECONDS)
    except TimeoutError:
        return False


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway app; tests pass their own settings (temporary database, unused ports)."""
    settings = settings or get_settings()
    redact_secrets_in_logs(settings)  # first: Telegram's start-up logs URLs that hold its token
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    rasa = RasaClient(settings)
    # Agents' suggestions and the search API; publishing embeds with the same encoder.
    kb_index = LiveIndex(sessions, poll_seconds=settings.kb_poll_seconds)
    live = LiveHub(settings.redis_url, channel=f"{settings.redis_namespace}:live")
    scheduler = Scheduler(sessions, rasa, settings, live)
    telegram = TelegramChannel(settings, sessions, rasa, live) if settings.telegram_bot_token else None
    history_limits = history_rate_limits(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        live.bind(asyncio.get_running_loop())
        kb_index.start()
        if settings.scheduler_enabled:
            scheduler.start()
        if settings.kb_warm_up:
            embedding.warm_up()  # agents' suggestions and publishing need the encoder
        if telegram is not None:
            telegram.start()
        try:
            yield
        finally:
            if telegram is not None:
                await telegram.stop()
            await scheduler.stop()
            await live.aclose()
            kb_index.stop()
            await rasa.aclose()
            await history_limits.aclose()
            engine.dispose()

    production = settings.kefu_env == "production"
    app = FastAPI(
        title="Kefu gateway",
        lifespan=lifespan,
        docs_url=None if production else "/docs",
        redoc_url=None,
        openapi_url=None if production else "/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessions
    app.state.rasa = rasa
    app.state.kb_index = kb_index
    app.state.scheduler = scheduler
    app.state.live = live
    app.state.telegram = telegram
    register_error_handlers(app)

    for router in (
        widget.router,
        telegram_channel.router,
        widget_live.router,
        auth.router,
        kb.router,
        tickets.router,
        dashboard.router,
        value.router,
        console.router,
        replies.router,
        replies.console_router,
        pages.router,
    ):
        app.include_router(router)
    # Each middleware added wraps the ones before it: the last one added sees a request first.
    app.add_middleware(HistoryRateLimit, path=widget.router.prefix + "/history", limits=history_limits)
    app.add_middleware(PageSecurityHeaders)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_body_bytes,
        smaller=[(widget.router.prefix + "/", widget.MAX_BODY_BYTES)],
        login_first=[r.prefix for r in (console.router, kb.router, tickets.router, dashboard.router)],
    )
    # Outside the body limit and the history limit, so that their 413 and 429 get CORS headers too.
    app.add_middleware(
        PathScopedCORS,
        path_prefix=widget.router.prefix + "/",
        allow_origins=[o.strip() for o in settings.widget_allowed_origins.split(",") if o.strip()],
    )
    trusted_proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    if trusted_proxies:
        # Outermost: rate limits and the audit log must see the client's address, not the proxy's.
        # The gateway runs with uvicorn's own proxy handling off (Procfile), which trusts loopback.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/widget", StaticFiles(directory=STATIC_DIR / "widget"), name="widget")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Whether the database, Rasa (with a model), the action server and the search index are ready."""
        db_ok, rasa_status, actions_ok = await asyncio.gather(
            _database_check(app.state.sessionmaker), rasa.status(), rasa.action_server_ok()
        )
        kb_ok = kb_index.ready
        telegram_ok = telegram is None or telegram.ready
        redis_ok = live.relay_ok
        all_ok = db_ok and rasa_status["ok"] and actions_ok and kb_ok and telegram_ok and redis_ok
        body: dict[str, Any] = {
            "status": "ok" if all_ok else "degraded",
            "database": {"ok": db_ok},
            "rasa": rasa_status,
            "action_server": {"ok": actions_ok},
            "knowledge_base": {
                "ok": kb_ok,
                "articles": len(kb_index.index()) if kb_ok else 0,
                "generation": kb_index.generation,
            },
            # Live events between gateways (and Rasa's conversation locks) when REDIS_URL is set.
            "redis": {"enabled": bool(settings.redis_url), "ok": redis_ok},
            "telegram": {
                "enabled": telegram is not None,
                "ok": telegram_ok,
                **({"mode": settings.telegram_mode, "bot": telegram.username} if telegram else {}),
            },
        }
        return JSONResponse(body, status_code=200 if all_ok else 503)

    return app
