"""A customer who types faster than the rate limit, in the real widget in headless Chromium.

The gateway runs in this process (uvicorn in a thread) with a limit of 2 messages per visitor and a
window shortened to a few seconds, Rasa absent (every message gets the polite fallback). The shop
page is on another origin, as on a real site, so the widget reads the wait from the 429's body.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from bot.channels import widget_ratelimit
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.browser import chromium, new_page
from tests.support.stack import serve
from tests.support.widget import ShopSite, open_shop

WINDOW_SECONDS = 6.0


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_a_message_over_the_limit_waits_says_why_and_is_sent_once_later(
    web_settings: Settings, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(widget_ratelimit, "WINDOW_SECONDS", WINDOW_SECONDS)
    settings = web_settings.model_copy(update={"web_rate_per_minute": 2, "rasa_timeout_seconds": 0.5})
    site = ShopSite(tmp_path)
    page = new_page(browser, 1400, 900)
    try:
        with serve(create_app(settings)) as gateway:
            widget = open_shop(page, site, gateway)
            widget.open()
            widget.say("first")
            expect(widget.messages("system")).to_have_count(1)  # answered (the polite fallback)
            widget.say("second")
            expect(widget.messages("system")).to_have_count(2)

            widget.say("third, too soon")
            status = page.locator("kefu-chat p.status")
            expect(status).to_contain_text("faster than we can take them")
            expect(status).to_contain_text("go out in about")
            expect(widget.messages("customer").last).to_contain_text("Waiting to send")
            outbox = str(page.evaluate("localStorage.getItem('kefu.widget.outbox')"))
            assert "third, too soon" in outbox  # kept: a reload now would still send it

            # Sent by itself once the window has moved on, exactly once; the notice goes away.
            expect(page.locator("kefu-chat li.msg--pending")).to_have_count(0, timeout=WINDOW_SECONDS * 3000)
            expect(status).to_be_hidden()
            expect(widget.messages("system")).to_have_count(3)
            said = httpx.get(f"{gateway}/api/web/history", params={"session": widget.visitor()}).json()
            customer = [m["text"] for m in said["messages"] if m["author"] == "customer"]
            assert customer == ["first", "second", "third, too soon"]
            assert page.evaluate("localStorage.getItem('kefu.widget.outbox')") == "[]"
            assert page.dialogs == []  # type: ignore[attr-defined]
    finally:
        page.context.close()
        site.close()
