"""The embeddable widget as a customer sees it, on a shop site of another origin (browser tests)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from bot.settings import PROJECT_ROOT

DEMO_PAGE = PROJECT_ROOT / "bot" / "web" / "static" / "widget" / "demo.html"
VISITOR_KEY = "kefu.widget.visitor"


class ShopSite:
    """A static site on its own origin, with one shop page per gateway it embeds the widget from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page_for(self, gateway_url: str) -> str:
        """Write the demo shop page with its one script tag pointing at `gateway_url`; its address."""
        html = DEMO_PAGE.read_text().replace(
            'src="/widget/kefu-widget.js"', f'src="{gateway_url}/widget/kefu-widget.js"'
        )
        assert gateway_url in html, "the demo page's script tag changed; update this test"
        name = f"shop-{gateway_url.rsplit(':', 1)[-1]}.html"
        (self.root / name).write_text(html)
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


class Widget:
    """Locators for the widget inside its (open) shadow root; Playwright's selectors pierce it."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.host = page.locator("kefu-chat")
        self.launcher = page.get_by_role("button", name="Chat with us")
        self.panel = page.get_by_role("dialog")
        self.text_box = page.get_by_role("textbox", name="Your message")
        self.send_button = page.get_by_role("button", name="Send", exact=True)
        self.typing = page.locator("kefu-chat .typing")

    def messages(self, author: str) -> Locator:
        return self.page.locator(f"kefu-chat li.msg--{author}")

    def open(self) -> None:
        expect(self.launcher).to_be_visible()
        self.launcher.click()
        expect(self.panel).to_be_visible()

    def say(self, text: str) -> None:
        self.text_box.fill(text)
        self.text_box.press("Enter")
        expect(self.messages("customer").filter(has_text=text).last).to_be_visible()

    def wait_until_live(self) -> None:
        expect(self.host).to_have_attribute("data-connection", "live")

    def visitor(self) -> str:
        return str(self.page.evaluate(f"localStorage.getItem('{VISITOR_KEY}')"))

    def focused(self) -> str:
        """The class or id of what has the focus inside the widget, '' when it is elsewhere."""
        return str(
            self.page.evaluate(
                """() => {
                    const host = document.querySelector('kefu-chat');
                    if (document.activeElement !== host) return '';
                    const inside = host.shadowRoot.activeElement;
                    return inside ? (inside.id || inside.className) : '';
                }"""
            )
        )


def open_shop(page: Page, shop: ShopSite, gateway_url: str) -> Widget:
    page.goto(shop.page_for(gateway_url))
    widget = Widget(page)
    expect(widget.host).to_have_attribute("data-ready", "true")
    return widget
