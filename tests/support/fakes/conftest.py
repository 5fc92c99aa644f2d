"""The fake Telegram fixtures, for the fake's own tests."""

from tests.support.fakes.fixtures import fake_telegram, fake_telegram_process, fake_telegram_remote

__all__ = ["fake_telegram", "fake_telegram_process", "fake_telegram_remote"]
