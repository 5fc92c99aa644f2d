"""Web visitor ids for tests: ids the gateway would issue, or ask a running gateway for one."""

from __future__ import annotations

import functools

import httpx

from bot.channels.widget import is_issued_visitor_id, issue_visitor_id
from bot.settings import PLACEHOLDER_SECRET


def visitor_id(secret_key: str = PLACEHOLDER_SECRET) -> str:
    """An id as a gateway with this SECRET_KEY issues it (tests' settings keep the placeholder)."""
    return issue_visitor_id(secret_key)


def new_visitor(gateway_url: str) -> str:
    """A visitor id issued by the running gateway at `gateway_url` (POST /api/web/visitors)."""
    response = httpx.post(f"{gateway_url}/api/web/visitors", timeout=30)
    response.raise_for_status()
    return str(response.json()["session"])


@functools.cache
def named_visitor(name: str) -> str:
    """One issued id per readable name ("visitor-1"), the same every time within a test run; an id
    that is already one the gateway issues (the widget's, say) is itself."""
    return name if is_issued_visitor_id(PLACEHOLDER_SECRET, name) else visitor_id()
