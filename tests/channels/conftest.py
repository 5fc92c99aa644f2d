"""Fixtures for the channels' tests: the fake Telegram Bot API (tests/support/fakes)."""

from tests.support.fakes.fixtures import fake_telegram

__all__ = ["fake_telegram"]
