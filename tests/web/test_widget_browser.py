"""The widget in headless Chromium against a gateway in this process (no Rasa): the stars a customer
gives stay lit, also after a reload, and on a 360 px phone the launcher is on screen and tappable.

The bot's rating question is stored as the bot would have sent it; the chat is with a person (a
furious first message hands it over without the bot), so the customer's answer needs no Rasa.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import AuthorKind, Direction, Message, MessageStatus
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.browser import new_page
from tests.support.stack import serve
from tests.support.visitors import new_visitor
from tests.support.widget import VISITOR_KEY, ShopSite, open_shop

FURIOUS = "This is absolutely ridiculous, you useless thieves, I am furious!!"
RATING = [{"title": f"{n} " + "★" * n, "payload": str(n)} for n in range(1, 6)] + [
    {"title": "Skip", "payload": "skip"}
]


@pytest.fixture
def gateway(web_settings: Settings) -> Iterator[str]:
    with serve(create_app(web_settings)) as url:
        yield url


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[ShopSite]:
    site = ShopSite(tmp_path)
    yield site
    site.close()


def _lit(page: Page) -> list[bool]:
    stars = page.get_by_role("radio")
    return [("lit" in (stars.nth(i).get_attribute("class") or "")) for i in range(stars.count())]


def test_the_stars_a_customer_gives_stay_lit(
    gateway: str, shop: ShopSite, browser: Browser, db_sessionmaker: sessionmaker[Session]
) -> None:
    visitor = new_visitor(gateway)
    handed = httpx.post(f"{gateway}/api/web/messages", json={"session": visitor, "text": FURIOUS}, timeout=30)
    assert handed.json()["mode"] == "pending_agent", handed.text
    with db_sessionmaker.begin() as session:
        session.add(
            Message(
                conversation_id=int(handed.json()["conversation_id"]),
                channel="web",
                direction=Direction.OUTBOUND,
                author_kind=AuthorKind.BOT,
                text="How would you rate the help you got today?",
                payload={"buttons": RATING},
                status=MessageStatus.SENT,
            )
        )
    page = new_page(browser)
    try:
        page.add_init_script(f"localStorage.setItem('{VISITOR_KEY}', '{visitor}')")
        widget = open_shop(page, shop, gateway)
        widget.open()
        four = page.get_by_role("radio", name="Rate 4 out of 5")
        expect(four).to_be_visible()
        four.click()
        expect(widget.messages("customer").last).to_contain_text("4 ★★★★")
        page.mouse.move(5, 5)  # the pointer leaves the stars
        expect(four).to_be_disabled()
        expect(four).to_have_attribute("aria-checked", "true")
        assert _lit(page) == [True, True, True, True, False]
        assert four.evaluate("(star) => getComputedStyle(star).color") == "rgb(232, 161, 0)"
        assert four.evaluate("(star) => getComputedStyle(star).opacity") == "1"

        page.reload()
        expect(widget.host).to_have_attribute("data-ready", "true")
        expect(page.get_by_role("radio", name="Rate 4 out of 5")).to_have_attribute("aria-checked", "true")
        assert _lit(page) == [True, True, True, True, False]
    finally:
        page.context.close()


@pytest.mark.parametrize("phone", [False, True], ids=["narrow-window", "phone"])
def test_on_a_360_px_screen_the_launcher_is_on_screen_and_opens_the_chat(
    gateway: str, shop: ShopSite, browser: Browser, phone: bool
) -> None:
    context = browser.new_context(
        viewport={"width": 360, "height": 640}, is_mobile=phone, has_touch=phone, device_scale_factor=2
    )
    page = context.new_page()
    try:
        widget = open_shop(page, shop, gateway)
        expect(widget.launcher).to_be_visible()
        box = widget.launcher.bounding_box()
        # What the screen shows, in the page's coordinates (on the phone, the shop's page is wider).
        left, top, width, height = page.evaluate(
            "const v = window.visualViewport; [v.offsetLeft, v.offsetTop, v.width, v.height]"
        )
        assert (width, height) == (360, 640)
        assert box is not None
        assert box["x"] >= left and box["y"] >= top, box
        assert box["x"] + box["width"] <= left + width and box["y"] + box["height"] <= top + height, box
        # Nothing of the shop's lies on top of it: a tap in its middle reaches the launcher.
        centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        on_top = page.evaluate(
            "([x, y]) => { const hit = document.elementFromPoint(x, y); return hit && hit.localName; }",
            list(centre),
        )
        assert on_top == "kefu-chat", on_top
        if phone:
            widget.launcher.tap()
        else:
            widget.launcher.click()
        expect(widget.panel).to_be_visible()
        panel = widget.panel.bounding_box()
        assert panel is not None and (panel["x"], panel["y"]) == (left, top), panel
        assert (panel["width"], panel["height"]) == (360, 640), panel  # the whole screen
    finally:
        context.close()
