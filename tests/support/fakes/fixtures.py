"""Pytest fixtures for the fake Telegram Bot API; import them into a conftest.py to use them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.telegram_api import FakeTelegram, FakeTelegramProcess


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """A fresh fake Bot API in a background thread of this process, stopped after the test."""
    with FakeTelegram() as tg:
        yield tg


@pytest.fixture(scope="session")
def fake_telegram_process() -> Iterator[FakeTelegramProcess]:
    """One fake Bot API subprocess for the whole run (starting one costs ~0.5 s); reset per use."""
    with FakeTelegramProcess() as tg:
        yield tg


@pytest.fixture
def fake_telegram_remote(fake_telegram_process: FakeTelegramProcess) -> FakeTelegramProcess:
    """The session's fake Bot API subprocess, reset (no calls, rules, updates or webhook) for this test."""
    fake_telegram_process.reset()
    return fake_telegram_process
