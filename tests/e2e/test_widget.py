"""The embeddable web widget in headless Chromium, against the real processes, on a foreign site.

The shop page (bot/web/static/widget/demo.html, with its hostile CSS) is served by a tiny HTTP server
on another loopback port, so the widget really runs cross-origin: its script, its API calls and its
WebSocket all go to the gateway's origin. One stack (Rasa, the action server and the gateway, from
the Procfile) serves every test here but the gateway-restart one, which runs a gateway of its own.
The browser is Debian's Chromium (scripts/provision_chromium.sh) or KEFU_CHROMIUM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from bot.demo.seed import DEMO_PASSWORD_AGENT
from bot.settings import PROJECT_ROOT, Settings
from tests.support.browser import chromium, new_page
from tests.support.stack import Stack, prepare_database, running_stack, settings_env, stack_settings
from tests.support.widget import ShopSite, open_shop

pytestmark = pytest.mark.rasa

XSS = "<img src=x onerror=alert(1)>"
expect.set_options(timeout=20_000)


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("widget-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopSite]:
    site = ShopSite(tmp_path_factory.mktemp("shop-site"))
    yield site
    site.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = new_page(browser)
    yield opened
    opened.context.close()


def history(gateway_url: str, visitor: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway_url}/api/web/history", params={"session": visitor}, timeout=30)
    response.raise_for_status()
    return dict(response.json())


# --- tests on the shared stack ----------------------------------------------------------------------------


def test_a_customer_says_hi_and_the_bot_answers_with_a_typing_indicator_meanwhile(
    stack: Stack, shop: ShopSite, page: Page
) -> None:
    widget = open_shop(page, shop, stack.gateway_url)
    assert shop.origin != stack.gateway_url  # the widget runs on a foreign site
    widget.open()
    expect(widget.messages("bot").first).to_contain_text("Ask me about your order")  # data-greeting
    # Hold each request a moment in the page, long enough to see the indicator.
    page.evaluate(
        """() => {
            const real = window.fetch;
            const later = () => new Promise((resolve) => setTimeout(resolve, 1500));
            window.fetch = (...args) => later().then(() => real(...args));
        }"""
    )
    widget.say("hi")
    expect(widget.typing).to_have_text("Assistant is typing…")
    expect(widget.messages("bot").nth(1)).to_contain_text("I'm Kefu")
    expect(widget.typing).to_have_text("")
    expect(widget.page.locator("kefu-chat li.msg--pending")).to_have_count(0)
    said = history(stack.gateway_url, widget.visitor())["messages"]
    assert [m["text"] for m in said if m["author"] == "customer"] == ["hi"]


def test_a_reload_keeps_the_visitor_the_history_and_the_open_panel(
    stack: Stack, shop: ShopSite, page: Page
) -> None:
    widget = open_shop(page, shop, stack.gateway_url)
    widget.open()
    widget.say("hello there")
    expect(widget.messages("bot").nth(1)).to_be_visible()
    visitor = widget.visitor()
    bot_reply = widget.messages("bot").nth(1).locator(".bubble").inner_text()

    page.reload()
    expect(widget.host).to_have_attribute("data-ready", "true")
    assert widget.visitor() == visitor
    expect(widget.panel).to_be_visible()  # it was open before the reload
    expect(widget.messages("customer")).to_have_count(1)
    expect(widget.messages("customer")).to_contain_text("hello there")
    expect(widget.messages("bot").nth(1).locator(".bubble")).to_have_text(bot_reply)


def test_an_agents_reply_arrives_live_over_the_websocket_and_the_rating_shows_stars(
    stack: Stack, shop: ShopSite, page: Page
) -> None:
    widget = open_shop(page, shop, stack.gateway_url)
    widget.open()
    widget.say("I want to talk to a person")
    expect(widget.messages("bot").filter(has_text="passing you to a person")).to_have_count(1)
    widget.wait_until_live()
    conversation = history(stack.gateway_url, widget.visitor())
    assert conversation["mode"] == "pending_agent"
    conversation_id = conversation["conversation_id"]

    polled: list[str] = []
    page.on(
        "request", lambda request: polled.append(request.url) if "/api/web/history" in request.url else None
    )
    reply = "Hi, I'm Ada from the support team. How can I help?"
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as ada:
        login = ada.post(
            "/api/auth/login", json={"email": "ada@kefu.example", "password": DEMO_PASSWORD_AGENT}
        )
        assert login.status_code == 200, login.text
        ada.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        assert ada.post(f"/api/console/conversations/{conversation_id}/claim").status_code == 200
        sent = ada.post(f"/api/console/conversations/{conversation_id}/messages", json={"text": reply})
        assert sent.status_code == 200, sent.text

        expect(widget.messages("agent").locator(".bubble")).to_have_text([reply])
        assert polled == [], f"the widget polled instead of using its socket: {polled}"
        expect(widget.messages("system").filter(has_text="joined")).to_have_count(1)

        # Handed back, the bot asks for a rating: five stars and a Skip button.
        back = ada.post(f"/api/console/conversations/{conversation_id}/handback")
        assert back.status_code == 200, back.text
    four = page.get_by_role("radio", name="Rate 4 out of 5")
    expect(four).to_be_visible()
    expect(page.get_by_role("radiogroup")).to_have_count(1)
    expect(page.get_by_role("button", name="Skip")).to_be_visible()
    four.click()
    expect(widget.messages("customer").last).to_contain_text("4 ★★★★")
    expect(four).to_be_disabled()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        said = history(stack.gateway_url, widget.visitor())["messages"]
        if said[-1]["author"] != "customer" and any(m["text"] == "4" for m in said):
            break
        time.sleep(0.5)
    assert [m["text"] for m in said if m["author"] == "customer"][-1] == "4"
    assert said[-1]["author"] in ("bot", "system")


def test_markup_typed_by_a_customer_is_shown_as_text(stack: Stack, shop: ShopSite, page: Page) -> None:
    widget = open_shop(page, shop, stack.gateway_url)
    widget.open()
    widget.say(XSS)
    expect(widget.messages("customer").locator(".bubble")).to_have_text([XSS])
    expect(widget.messages("bot").nth(1)).to_be_visible()  # answered, so every bubble is rendered
    page.reload()
    expect(widget.host).to_have_attribute("data-ready", "true")
    expect(widget.messages("customer").locator(".bubble")).to_have_text([XSS])
    assert page.locator("kefu-chat img").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_on_a_phone_the_keyboard_alone_opens_sends_and_closes(
    stack: Stack, shop: ShopSite, browser: Browser
) -> None:
    page = new_page(browser, width=360, height=640)
    try:
        widget = open_shop(page, shop, stack.gateway_url)
        _assert_within_viewport(widget.launcher, 360, 640)

        for _ in range(12):  # the shop's own buttons come first
            page.keyboard.press("Tab")
            if widget.focused() == "launcher":
                break
        assert widget.focused() == "launcher"
        page.keyboard.press("Enter")
        expect(widget.panel).to_be_visible()
        assert widget.focused() == "kefu-text"
        box = widget.panel.bounding_box()
        assert box is not None and box["width"] == 360 and box["height"] == 640  # full screen
        _assert_within_viewport(widget.send_button, 360, 640)
        expect(widget.send_button).to_be_visible()
        expect(page.get_by_role("button", name="Talk to a person")).to_be_visible()
        _assert_within_viewport(page.get_by_role("button", name="Close chat"), 360, 640)

        page.keyboard.type("do you ship to Austria?")
        page.keyboard.press("Enter")
        expect(widget.messages("customer")).to_contain_text("do you ship to Austria?")
        expect(widget.text_box).to_have_value("")
        expect(widget.messages("bot").nth(1)).to_be_visible()

        page.keyboard.press("Escape")
        expect(widget.panel).to_be_hidden()
        assert widget.focused() == "launcher"
        _assert_within_viewport(widget.launcher, 360, 640)
        assert page.dialogs == []  # type: ignore[attr-defined]
    finally:
        page.context.close()


def _assert_within_viewport(locator: Locator, width: int, height: int) -> None:
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, box


def test_the_shops_hostile_css_neither_hides_nor_restyles_the_widget(
    stack: Stack, shop: ShopSite, page: Page
) -> None:
    widget = open_shop(page, shop, stack.gateway_url)
    # The shop's CSS is really in force on its own page...
    shop_button = page.get_by_role("button", name="Add to cart").first
    assert shop_button.evaluate("b => getComputedStyle(b).color") == "rgba(0, 0, 0, 0)"
    expect(page.locator("div.promo-wrapper")).to_be_hidden()

    # ...and does not reach the widget.
    expect(widget.launcher).to_be_visible()
    style = widget.launcher.evaluate(
        "b => { const s = getComputedStyle(b); "
        "return [s.backgroundColor, s.color, s.position, s.borderRadius]; }"
    )
    assert style == ["rgb(11, 95, 255)", "rgb(255, 255, 255)", "fixed", "50%"]  # data-color="#0b5fff"
    # On top of the shop's z-index war (a fixed ad and a cookie banner at z-index 2^31-1).
    box = widget.launcher.bounding_box()
    assert box is not None
    on_top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y) === document.querySelector('kefu-chat')",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert on_top, "something on the shop page covers the launcher"

    widget.open()
    expect(page.get_by_role("heading", name="Nordlicht help")).to_be_visible()
    fonts = widget.text_box.evaluate(
        "t => { const s = getComputedStyle(t); return [s.fontSize, s.textTransform, s.color]; }"
    )
    assert fonts == ["15px", "none", "rgb(29, 35, 48)"]
    send_colour = widget.send_button.evaluate("b => getComputedStyle(b).color")
    assert send_colour == "rgb(255, 255, 255)"
    human = page.get_by_role("button", name="Talk to a person")
    human.click()
    expect(widget.messages("customer").last.locator(".bubble")).to_have_text("Talk to a person")
    expect(widget.messages("bot").filter(has_text="passing you to a person")).to_have_count(1)
    said = history(stack.gateway_url, widget.visitor())
    assert said["mode"] == "pending_agent"
    assert [m["text"] for m in said["messages"] if m["author"] == "customer"] == ["/request_human"]


# --- the gateway restarts while the customer types --------------------------------------------------------


@contextmanager
def gateway_process(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The gateway as the Procfile runs it, alone, so that the test can kill and restart it."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                str(PROJECT_ROOT / ".venv" / "bin" / "uvicorn"),
                "--factory",
                "bot.web.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.gateway_port),
                "--no-access-log",
            ],
            cwd=PROJECT_ROOT,
            env=settings_env(settings) | {"KB_WARM_UP": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_gateway(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).json()["database"]["ok"]:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"the gateway at {url} did not come up within {timeout:.0f}s")


def test_a_message_typed_while_the_gateway_is_down_is_delivered_once_after_it_restarts(
    tmp_path: Path, shop: ShopSite, browser: Browser
) -> None:
    settings = stack_settings(tmp_path)
    prepare_database(settings)
    log_path = tmp_path / "gateway.log"
    page = new_page(browser)
    try:
        with (
            gateway_process(settings, log_path) as first_gateway,
            running_stack(tmp_path, "rasa", "actions", settings=settings) as stack,
        ):
            widget = open_shop(page, shop, stack.gateway_url)
            widget.open()
            widget.say("hi")
            expect(widget.messages("bot").nth(1)).to_contain_text("I'm Kefu")
            widget.wait_until_live()

            os.killpg(first_gateway.pid, signal.SIGKILL)  # a crash, not a polite shutdown
            first_gateway.wait()
            expect(widget.host).not_to_have_attribute("data-connection", "live")

            text = "where is my order?"
            widget.say(text)
            expect(page.get_by_role("status")).to_contain_text("couldn't reach the chat service")
            expect(widget.messages("customer").last).to_contain_text("Not sent yet")

            with gateway_process(settings, log_path):
                wait_for_gateway(stack.gateway_url)
                expect(page.locator("kefu-chat li.msg--pending")).to_have_count(0, timeout=45_000)
                expect(widget.messages("customer").filter(has_text=text)).to_have_count(1)
                widget.wait_until_live()
                expect(page.get_by_role("status")).to_be_hidden()

                deadline = time.monotonic() + 30
                said: list[dict[str, Any]] = []
                while time.monotonic() < deadline:
                    said = history(stack.gateway_url, widget.visitor())["messages"]
                    if said and said[-1]["author"] != "customer":
                        break
                    time.sleep(0.5)
                assert [m["text"] for m in said if m["author"] == "customer"] == ["hi", text]
                answer = said[-1]
                assert answer["author"] in ("bot", "system") and answer["text"]
                # The answer is shown in the widget too, once.
                expect(page.locator(f'kefu-chat li[data-id="{answer["id"]}"]')).to_have_count(1)
                assert page.evaluate("localStorage.getItem('kefu.widget.outbox')") == "[]"
    except Exception:
        print(log_path.read_text(errors="replace")[-4000:] if log_path.exists() else "no gateway log")
        raise
    finally:
        page.context.close()
