"""Fixtures for the web channel: the real app on a migrated temporary database, Rasa on a dead port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from bot.web.app import create_app
from tests.support.browser import chromium
from tests.support.stack import serve


def unused_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then closed again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium for this directory's browser tests, one per test."""
    with chromium() as launched:
        yield launched


@contextmanager
def gateway_without_rasa(settings: Settings, **changes: object) -> Iterator[str]:
    """The gateway in this process (uvicorn in a thread) with Rasa and the action server absent, the
    scheduler off and no encoder warm-up: browser tests arrange chats in the database."""
    quiet = settings.model_copy(
        update={
            "rasa_url": f"http://127.0.0.1:{unused_loopback_port()}",
            "action_server_url": f"http://127.0.0.1:{unused_loopback_port()}",
            "scheduler_enabled": False,
            "kb_warm_up": False,
            **changes,
        }
    )
    with serve(create_app(quiet)) as url:
        yield url


@pytest.fixture
def web_settings(settings: Settings, db_sessionmaker: sessionmaker[Session]) -> Settings:
    """The test's migrated database (tests/conftest.py); Rasa and the action server on dead ports.

    No scheduler and no encoder warm-up in the background: each would run in every test's app,
    competing for the SQLite write lock and the CPU with what the test does. Tests of the
    scheduler drive it directly (tests/test_scheduler.py)."""
    return settings.model_copy(
        update={
            "rasa_url": f"http://127.0.0.1:{unused_loopback_port()}",
            "action_server_url": f"http://127.0.0.1:{unused_loopback_port()}",
            "rasa_timeout_seconds": 2.0,
            "scheduler_enabled": False,
            "kb_warm_up": False,
        }
    )


@pytest.fixture
async def web_app(web_settings: Settings) -> AsyncIterator[FastAPI]:
    """The real gateway app, with its lifespan running (so its HTTP client and engine get closed)."""
    app = create_app(web_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(web_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def db(db_sessionmaker: sessionmaker[Session]) -> sessionmaker[Session]:
    """A separate session factory on the app's database, for arranging and checking rows."""
    return db_sessionmaker
