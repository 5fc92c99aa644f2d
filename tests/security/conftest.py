"""Fixtures for the security tests: the gateway app on a temporary database (tests/web/conftest.py)."""

from tests.web.conftest import client, db, web_app, web_settings

__all__ = ["client", "db", "web_app", "web_settings"]
