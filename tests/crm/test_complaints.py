"""Reading a complaint: category, what the customer wants, and how severe it is."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from bot.crm import complaints
from bot.crm.models import Order, OrderStatus, Severity, Shipment


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("The fire pit arrived cracked", "product_defect"),
        ("the grill caught fire and burned my hand", "product_defect"),
        ("I was charged twice for order 100004", "billing"),
        ("you sent me the wrong colour", "wrong_or_missing_item"),
        ("my parcel is two weeks late", "delivery_problem"),
        ("your agent was rude to me on the phone", "staff_attitude"),
        ("the checkout page crashed three times", "website_app"),
        ("I want to make a complaint", None),
    ],
)
def test_category_from_the_customers_words(text: str, category: str | None) -> None:
    assert complaints.infer_category(text) == category


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("I want my money back", "refund"),
        ("please send a new one", "replacement"),
        ("can you repair it", "repair"),
        ("an apology would be nice", "apology"),
        ("I just want an explanation", "information"),
        ("whatever", None),
    ],
)
def test_outcome_from_the_customers_words(text: str, outcome: str | None) -> None:
    assert complaints.infer_outcome(text) == outcome
    assert complaints.parse_outcome(text) == outcome


def test_button_values_and_labels_are_categories() -> None:
    assert complaints.parse_category("billing") == "billing"
    assert complaints.parse_category("Something else") == "other"
    assert complaints.parse_category("the website or app") == "website_app"


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("The fire pit arrived cracked", Severity.LOW),  # "fire pit" is a product, not a fire
        ("the grill caught fire and burned my hand", Severity.HIGH),
        ("I will take legal action", Severity.HIGH),
        ("charged twice, again", Severity.MEDIUM),
        ("THE LANTERN YOU SENT DOES NOT WORK AT ALL", Severity.MEDIUM),
        ("the mug has a small scratch", Severity.LOW),
    ],
)
def test_severity_from_the_words(text: str, severity: Severity) -> None:
    assert complaints.assess(text).severity is severity


def _order(total: str, status: OrderStatus = OrderStatus.DELIVERED, promised: date | None = None) -> Order:
    order = Order(number="100999", status=status, total=Decimal(total), currency="EUR")
    order.shipments = [Shipment(carrier="DHL", tracking_number="1", status=status, promised_date=promised)]
    return order


def test_a_large_order_or_a_long_delay_raises_severity_a_step() -> None:
    today = date(2026, 11, 24)
    assert complaints.assess("the mug has a small scratch", _order("40.00")).severity is Severity.LOW
    large = complaints.assess("the table has a small scratch", _order("450.00"))
    assert large.severity is Severity.MEDIUM and any("order total" in r for r in large.reasons)
    late = _order("60.00", OrderStatus.DELAYED, promised=today - timedelta(days=10))
    assert complaints.assess("where is it", late, today).severity is Severity.MEDIUM
    slightly_late = _order("60.00", OrderStatus.DELAYED, promised=today - timedelta(days=2))
    assert complaints.assess("where is it", slightly_late, today).severity is Severity.LOW


@pytest.mark.parametrize(
    ("text", "descriptive"),
    [
        ("I want to make a complaint", False),
        ("complaint", False),
        ("I'd like to file a formal complaint please", False),
        ("the lantern is broken", True),
        ("Hello, I ordered a tent last month and it leaks everywhere when it rains", True),
    ],
)
def test_an_opening_that_tells_the_story_is_kept_as_the_details(text: str, descriptive: bool) -> None:
    assert complaints.is_descriptive(text) is descriptive
