"""Order look-ups, proof of ownership and the failure counting behind the lock-out."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from bot.crm import orders
from bot.crm.conversations import get_or_create_conversation
from bot.crm.models import Customer
from bot.demo.seed import seed_demo_data


@pytest.fixture
def seeded(db_session: Session) -> Session:
    seed_demo_data(db_session, date(2026, 11, 20))
    db_session.flush()
    return db_session


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100004", "100004"),
        ("#100004", "100004"),
        ("where is order # 100231 please", "100231"),
        ("my number is 0151 23456789", None),  # digits inside a phone number are not an order
        ("1000045", None),
        # Any 6 digits not inside a longer number: one that no order has is "not found", not "malformed".
        ("200001", "200001"),
        ("999999", "999999"),
    ],
)
def test_parse_order_number(text: str, expected: str | None) -> None:
    assert orders.parse_order_number(text) == expected


@pytest.mark.parametrize(
    ("text", "email", "digits"),
    [
        ("my email is Ana.Souza@Example.com.", "ana.souza@example.com", None),
        ("+44 7700 900123", None, "447700900123"),
        ("(0151) 234-56789", None, "015123456789"),
        ("nope", None, None),
    ],
)
def test_parse_contact(text: str, email: str | None, digits: str | None) -> None:
    contact = orders.parse_contact(text)
    if email is None and digits is None:
        assert contact is None
    else:
        assert contact == orders.Contact(email=email, phone_digits=digits)


def test_phone_numbers_match_across_national_and_international_forms() -> None:
    assert orders.phones_match("+4915123456789", "015123456789")
    assert not orders.phones_match("+4915123456789", "015123456780")
    assert not orders.phones_match(None, "015123456789")


def test_verify_order_owner_accepts_email_or_phone_and_nothing_else(seeded: Session) -> None:
    by_email = orders.verify_order_owner(seeded, "100001", orders.Contact(email="ana.souza@example.com"))
    by_phone = orders.verify_order_owner(seeded, "100001", orders.Contact(phone_digits="351912345678"))
    assert by_email is not None and by_email is by_phone
    assert orders.verify_order_owner(seeded, "100001", orders.Contact(email="mei.chen@example.com")) is None
    assert orders.verify_order_owner(seeded, "199999", orders.Contact(email="ana.souza@example.com")) is None


def test_recent_orders_are_the_customers_own_newest_first(seeded: Session) -> None:
    ana = orders.find_order(seeded, "100001")
    assert ana is not None
    recent = orders.recent_orders(seeded, ana.customer_id, limit=10)
    assert {o.customer_id for o in recent} == {ana.customer_id}
    assert [o.placed_at for o in recent] == sorted((o.placed_at for o in recent), reverse=True)
    assert {"100001", "100002", "100003"} <= {o.number for o in recent}


def test_linking_a_conversation_records_the_identity_once(seeded: Session) -> None:
    conversation = get_or_create_conversation(seeded, "web", "visitor-a")
    order = orders.find_order(seeded, "100001")
    assert order is not None
    customer: Customer = order.customer
    orders.link_conversation(seeded, conversation, customer)
    orders.link_conversation(seeded, conversation, customer)
    assert conversation.customer_id == customer.id and conversation.verified_at is not None
    assert [(i.channel, i.external_id) for i in customer.identities] == [("web", "visitor-a")]
