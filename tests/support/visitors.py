"""Web visitor ids for tests: ids the gateway would issue, or ask a running gateway for one."""

from __future__ import annotations

import functools

import httpx

from bot.channels.widget import is_issued_visitor_id, issue_visitor_id
from bot.settings import Settings


@functools.cache
def installation_secret() -> str:
    """The SECRET_KEY every Settings() of this checkout resolves to when none is set (var/secret_key):
    the key of the test stacks and of the in-process apps alike."""
    return Settings().secret_key


def visitor_id(secret_key: str | None = None) -> str:
    """An id as a gateway with this SECRET_KEY (by default the installation's) issues it."""
    return issue_visitor_id(secret_key or installation_secret())


def new_visitor(gateway_url: str) -> str:
    """A visitor id issued by the running gateway at `gateway_url` (POST /api/web/visitors)."""
    response = httpx.post(f"{gateway_url}/api/web/visitors", timeout=30)
    response.raise_for_status()
    return str(response.json()["session"])


@functools.cache
def named_visitor(name: str, secret_key: str | None = None) -> str:
    """One issued id per readable name ("visitor-1"), the same every time within a test run; an id
    that is already one the gateway issues (the widget's, say) is itself."""
    key = secret_key or installation_secret()
    return name if is_issued_visitor_id(key, name) else issue_visitor_id(key)
