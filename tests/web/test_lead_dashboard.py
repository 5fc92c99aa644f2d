"""The lead's dashboard in headless Chromium, over the demo data and 30 days of its history: what a lead
reads is words and durations, not code names and minutes, and the resolution chart shows its four
categories. The gateway runs in this process (uvicorn in a thread); Rasa is not needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from bot.crm.models import utcnow
from bot.demo.history import seed_history
from bot.demo.seed import DEMO_PASSWORD_LEAD, seed_demo_data
from bot.settings import Settings
from bot.web.app import create_app
from tests.support.browser import log_in, new_page
from tests.support.stack import serve

DURATION = re.compile(r"^(?:under 1 min|\d+ min|\d+ h(?: \d+ min)?|\d+ d(?: \d+ h)?|–)$")
CATEGORIES = ["Confirmed", "Assumed", "Not resolved", "Handed to a person"]


@pytest.fixture
def dashboard(
    web_settings: Settings, db_sessionmaker: sessionmaker[Session], browser: Browser
) -> Iterator[Page]:
    """The dashboard page as Lena opens it: the default range, the last 30 days."""
    now = utcnow()
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, now.date())
        seed_history(session, days=30, now=now)
    page = new_page(browser, 1400, 1000)
    try:
        with serve(create_app(web_settings)) as url:
            log_in(
                page,
                SimpleNamespace(gateway_url=url),
                "/console/lead",
                "lead@kefu.example",
                DEMO_PASSWORD_LEAD,
            )  # type: ignore[arg-type]
            expect(page.locator("figure[data-chart]")).to_have_count(12)
            yield page
    finally:
        page.context.close()


def test_labels_are_words_not_code_names(dashboard: Page) -> None:
    for summary in dashboard.locator("figure[data-chart] details summary").all():
        summary.click()  # every table open, so its words are on screen too
    shown = dashboard.locator("#charts").inner_text()
    svg_words = " ".join(dashboard.locator("#charts svg text").all_text_contents())
    for text in (shown, svg_words):
        assert not re.search(r"[a-z]_[a-z]", text), re.findall(r"\w*[a-z]_[a-z]\w*", text)[:5]
    complaints = dashboard.locator('figure[data-chart="complaint_categories"] svg text').all_text_contents()
    assert "Wrong or missing item" in complaints and "Product defect" in complaints
    headers = dashboard.locator('figure[data-chart="response_times"] th').all_text_contents()
    assert headers == ["Measure", "Median time", "9 in 10 within", "Measured"]
    channels = dashboard.locator('figure[data-chart="channels"] svg text.chart__label').all_text_contents()
    assert set(channels) == {"Web chat", "Telegram"}


def test_durations_are_minutes_hours_and_days(dashboard: Page) -> None:
    figure = dashboard.locator('figure[data-chart="response_times"]')
    figure.locator("summary").click()
    cells = [row.locator("td").all_text_contents() for row in figure.locator("tbody tr").all()]
    assert cells[0][0] == "Chat first response"
    times = [cell for row in cells for cell in row[1:3]]
    assert times and all(DURATION.match(cell) for cell in times), times
    assert any(" d " in cell or cell.endswith(" d") for cell in times)  # ticket resolution takes days
    # The bars say the same, and so does the headline above them.
    values = figure.locator("svg text.chart__value").all_text_contents()
    assert values and all(DURATION.match(value) for value in values), values
    headline = figure.locator("p.muted").inner_text()
    assert re.search(r"Ticket resolution, median: \d+ d", headline), headline
    assert not re.search(r"\d+\.\d", headline), headline


def test_the_resolution_charts_show_the_four_categories_with_keys(dashboard: Page) -> None:
    ended = dashboard.locator('figure[data-chart="containment"]')
    assert ended.locator("svg text.chart__label").all_text_contents() == CATEGORIES
    assert re.search(r"Containment: \d+(\.\d)?%", ended.locator("p.muted").inner_text())
    fills = {rect.get_attribute("fill") for rect in ended.locator("svg rect").all()}
    assert len(fills) == 4  # one colour per category

    over_time = dashboard.locator('figure[data-chart="resolution_over_time"]')
    keys = over_time.locator(".chart__legend li")
    assert keys.all_inner_texts()[:4] == CATEGORIES
    # Each name comes with the colour of its line: the four and the pending ones.
    swatches = over_time.locator(".chart__key").evaluate_all(
        "nodes => nodes.map(node => getComputedStyle(node).backgroundColor)"
    )
    strokes = over_time.locator("svg polyline").evaluate_all(
        "nodes => nodes.map(node => getComputedStyle(node).stroke)"
    )
    assert len(swatches) == 5 and swatches == strokes and len(set(strokes)) == 5, (swatches, strokes)

    topics = dashboard.locator('figure[data-chart="resolution_topics"]')
    assert topics.locator(".chart__legend li").all_inner_texts() == CATEGORIES
    unresolved = dashboard.locator('figure[data-chart="unresolved_topics"]')
    expect(unresolved.locator("details")).to_have_attribute("open", "")
    assert "do you sell replacement zips for the tent?" in unresolved.locator("tbody").inner_text()


def test_line_charts_have_axes_with_ticks(dashboard: Page) -> None:
    volume = dashboard.locator('figure[data-chart="volume"]')
    y_ticks = volume.locator("svg text.chart__tick--y").all_text_contents()
    x_ticks = volume.locator("svg text.chart__tick--x").all_text_contents()
    assert len(y_ticks) >= 3 and y_ticks[0] == "0", y_ticks
    assert [int(tick) for tick in y_ticks] == sorted(int(tick) for tick in y_ticks)
    assert len(x_ticks) >= 4 and all(re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}", tick) for tick in x_ticks), (
        x_ticks
    )
    assert volume.locator(".chart__legend li").all_inner_texts() == ["Conversations", "Handed to a person"]
