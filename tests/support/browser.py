"""Headless Chromium for the browser tests (Debian's chromium from `make test`, or KEFU_CHROMIUM), and
logging in to a console in it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from tests.support.stack import Stack

CHROMIUM = Path(os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: run `make test` (it installs Debian's chromium) "
            "or set KEFU_CHROMIUM to a Chromium binary",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Page, stack: Stack, path: str, email: str, password: str) -> None:
    """Open a console page as a stranger, get sent to the login page, log in and come back to it."""
    page.goto(f"{stack.gateway_url}{path}")
    expect(page).to_have_url(f"{stack.gateway_url}/console/login?next={path}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(f"{stack.gateway_url}{path}") + r"(#\w+)?$"))


def new_page(browser: Browser, width: int = 1280, height: int = 800) -> Page:
    """A page in a context of its own; any alert() or confirm() a page opens is recorded in `dialogs`."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    dialogs: list[str] = []

    def note(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", note)
    page.dialogs = dialogs  # type: ignore[attr-defined]
    return page
