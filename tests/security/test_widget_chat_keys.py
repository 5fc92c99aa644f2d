"""The widget's visitor id in headless Chromium: issued by the gateway, kept across reloads, and an
old id of the widget's own making replaced by a fresh one without breaking the chat.

The gateway runs in this process (uvicorn in a thread), Rasa absent: every message gets the polite
fallback, which is enough to see that a message went through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from bot.channels.widget import is_issued_visitor_id
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.browser import chromium, new_page
from tests.support.stack import serve
from tests.support.widget import VISITOR_KEY, ShopSite, open_shop


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_a_new_visitor_gets_an_id_from_the_gateway_and_keeps_it_across_reloads(
    web_settings: Settings, browser: Browser, tmp_path: Path
) -> None:
    settings = web_settings.model_copy(update={"rasa_timeout_seconds": 0.5})
    site = ShopSite(tmp_path)
    page = new_page(browser, 1400, 900)
    try:
        with serve(create_app(settings)) as gateway:
            widget = open_shop(page, site, gateway)
            widget.open()
            widget.wait_until_live()
            issued = widget.visitor()
            assert is_issued_visitor_id(settings.secret_key, issued)
            widget.say("hello there")
            expect(widget.messages("system")).to_have_count(1)

            page.reload()
            widget = open_shop(page, site, gateway)
            assert widget.visitor() == issued
            expect(widget.messages("customer").filter(has_text="hello there")).to_have_count(1)
    finally:
        page.context.close()
        site.close()


@pytest.mark.parametrize("old_id", ["Qz", "0123456789abcdef0123456789abcdef"])
def test_an_old_id_of_the_widgets_own_making_is_replaced_and_the_chat_works(
    web_settings: Settings, browser: Browser, tmp_path: Path, old_id: str
) -> None:
    settings = web_settings.model_copy(update={"rasa_timeout_seconds": 0.5})
    site = ShopSite(tmp_path)
    page = new_page(browser, 1400, 900)
    try:
        with serve(create_app(settings)) as gateway:
            open_shop(page, site, gateway)
            page.evaluate(f"localStorage.setItem('{VISITOR_KEY}', '{old_id}')")
            page.reload()
            widget = open_shop(page, site, gateway)
            widget.open()
            widget.say("is anyone there?")
            expect(widget.messages("system")).to_have_count(1)  # answered: the chat works
            widget.wait_until_live()
            fresh = widget.visitor()
            assert fresh != old_id and is_issued_visitor_id(settings.secret_key, fresh)
            expect(page.locator("kefu-chat p.error")).to_be_hidden()
    finally:
        page.context.close()
        site.close()
