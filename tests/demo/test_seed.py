"""The demo data: enough of it, every order state, consistent tracking stories, and always the same."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.crm.models import Agent, Customer, Order, OrderItem, OrderStatus, Shipment, ShipmentEvent
from bot.demo.seed import DEMO_LOGINS, SeedSummary, database_is_empty, seed_demo_data
from bot.settings import Settings

TODAY = date(2025, 6, 15)
MIDNIGHT = datetime.combine(TODAY, time(0, 0), tzinfo=UTC)
S = OrderStatus
IN_FLIGHT = {S.SHIPPED, S.IN_TRANSIT, S.DELAYED}
SHOWCASE = {  # number: (owner's e-mail, status, carrier or None)
    "100001": ("ana.souza@example.com", S.IN_TRANSIT, "DHL"),
    "100002": ("ana.souza@example.com", S.DELIVERED, "UPS"),
    "100003": ("ana.souza@example.com", S.PROCESSING, None),
    "100004": ("jonas.becker@example.com", S.DELAYED, "DPD"),
    "100005": ("jonas.becker@example.com", S.SHIPPED, "UPS"),
    "100006": ("mei.chen@example.com", S.RETURNED, "UPS"),
    "100007": ("mei.chen@example.com", S.CANCELLED, None),
    "100008": ("mei.chen@example.com", S.DELIVERED, "DHL"),
}


def sqlite_settings(path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{path}", _env_file=None)  # type: ignore[call-arg]


def _seeded(settings: Settings, today: date) -> tuple[sessionmaker[Session], SeedSummary]:
    upgrade_database(settings)
    factory = make_sessionmaker(make_engine(settings))
    with factory.begin() as session:
        summary = seed_demo_data(session, today)
    return factory, summary


def _all_orders(session: Session) -> list[Order]:
    query = select(Order).options(
        selectinload(Order.customer),
        selectinload(Order.items),
        selectinload(Order.shipments).selectinload(Shipment.events),
    )
    return list(session.scalars(query.order_by(Order.number)))


def _fingerprint(session: Session) -> list[tuple[str, str, str, datetime]]:
    rows = session.execute(
        select(Order.number, Order.status, Customer.email, Order.placed_at)
        .join(Order.customer)
        .order_by(Order.number)
    )
    return [(number, status.value, email, placed_at) for number, status, email, placed_at in rows]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sessionmaker[Session], SeedSummary]]:
    # Seeded once for the read-only tests below.
    factory, summary = _seeded(sqlite_settings(tmp_path_factory.mktemp("seeded") / "kefu.db"), TODAY)
    yield factory, summary
    factory.kw["bind"].dispose()


@pytest.fixture
def session(seeded: tuple[sessionmaker[Session], SeedSummary]) -> Iterator[Session]:
    with seeded[0]() as session:
        yield session


def test_counts_match_the_summary_and_the_brief(seeded: tuple[sessionmaker[Session], SeedSummary]) -> None:
    factory, summary = seeded
    with factory() as session:
        counted = {
            model: session.scalar(select(func.count()).select_from(model))
            for model in (Customer, Order, OrderItem, Shipment, ShipmentEvent, Agent)
        }

    assert counted[Customer] == summary.customers >= 200
    assert counted[Order] == summary.orders >= 1000
    assert counted[OrderItem] == summary.order_items
    assert counted[Shipment] == summary.shipments
    assert counted[ShipmentEvent] == summary.shipment_events
    assert counted[Agent] == summary.agents == 4
    assert sum(summary.orders_by_status.values()) == summary.orders


def test_every_order_status_is_present(session: Session) -> None:
    assert set(session.scalars(select(Order.status).distinct())) == set(OrderStatus)


def test_orders_spread_over_two_years_with_old_ones_settled(session: Session) -> None:
    orders = _all_orders(session)
    ages = [(MIDNIGHT - order.placed_at).days for order in orders]

    assert min(ages) == 0 and 700 <= max(ages) < 730
    assert all(order.placed_at < MIDNIGHT for order in orders)
    # Nothing older than a month is still on its way; nothing is still "processing" after three days.
    for order, age in zip(orders, ages, strict=True):
        if age > 30:
            assert order.status in {S.DELIVERED, S.RETURNED, S.CANCELLED}, order
        if order.status is S.PROCESSING:
            assert age < 3, order
    assert sum(1 for age in ages if age < 14) >= 40  # enough recent orders for a lively demo


def test_order_numbers_are_six_digits_and_consecutive_from_100001(session: Session) -> None:
    numbers = list(session.scalars(select(Order.number).order_by(Order.number)))

    assert numbers == [str(100_001 + index) for index in range(len(numbers))]


def test_customers_have_unique_lower_case_example_com_emails_and_e164_phones(session: Session) -> None:
    customers = list(session.scalars(select(Customer)))
    emails = [customer.email for customer in customers]
    phones = [customer.phone for customer in customers if customer.phone]

    assert len(set(emails)) == len(emails)
    assert all(re.fullmatch(r"[a-z0-9._]+@example\.com", email) for email in emails)
    assert all(re.fullmatch(r"\+(49|31|44|43|351)\d{8,12}", phone) for phone in phones)
    # Order verification compares the last nine digits of a phone number.
    assert len({phone[-9:] for phone in phones}) == len(phones)


def test_order_totals_are_the_sum_of_their_items(session: Session) -> None:
    for order in _all_orders(session):
        assert order.items
        assert order.total == sum(item.unit_price * item.quantity for item in order.items)
        assert order.currency == "EUR"


def test_showcase_orders_belong_to_the_right_customers(session: Session) -> None:
    orders = {order.number: order for order in _all_orders(session) if order.number in SHOWCASE}

    found = {
        number: (order.customer.email, order.status, order.shipments[0].carrier if order.shipments else None)
        for number, order in orders.items()
    }
    assert found == SHOWCASE
    phones = {order.customer.email: order.customer.phone for order in orders.values()}
    assert phones == {
        "ana.souza@example.com": "+351912345678",
        "jonas.becker@example.com": "+4915123456789",
        "mei.chen@example.com": "+447700900123",
    }


def test_showcase_tracking_matches_each_status(session: Session) -> None:
    orders = {order.number: order for order in _all_orders(session) if order.number in SHOWCASE}
    in_transit, delayed, shipped = (orders[n].shipments[0] for n in ("100001", "100004", "100005"))
    promised = {n: orders[n].shipments[0].promised_date or date.min for n in ("100001", "100004", "100005")}

    assert in_transit.events[-1].status is S.IN_TRANSIT and promised["100001"] >= TODAY
    assert shipped.events[-1].description == "Picked up by UPS" and promised["100005"] >= TODAY
    assert delayed.events[-1].status is S.DELAYED and promised["100004"] < TODAY
    assert re.search(r"weather|customs", delayed.events[-1].description)
    assert orders["100006"].shipments[0].events[-1].description == "Return received at the warehouse"
    assert not orders["100003"].shipments and not orders["100007"].shipments
    # Placed a few days ago; the settled ones (delivered, returned, cancelled) a few weeks ago.
    for order in orders.values():
        age = MIDNIGHT - order.placed_at
        recent = order.status in {S.PROCESSING, *IN_FLIGHT}
        assert age < timedelta(days=7 if recent else 60), order


def test_every_shipment_tells_a_consistent_story(session: Session) -> None:
    for order in _all_orders(session):
        if order.status in {S.PROCESSING, S.CANCELLED}:
            assert order.shipments == [], order
            continue
        [shipment] = order.shipments
        times = [event.occurred_at for event in shipment.events]
        assert len(times) >= 2, order
        assert times == sorted(times) and len(set(times)) == len(times), order
        assert order.placed_at < times[0] and times[-1] < MIDNIGHT, order
        assert shipment.shipped_at is not None and shipment.promised_date is not None, order
        last = shipment.events[-1].status
        assert shipment.status is order.status, order
        # An order still on its way after its promised day counts as delayed, whatever the last scan says.
        late = order.status is S.DELAYED and last in IN_FLIGHT and shipment.promised_date < TODAY
        assert last is order.status or late, order
        if order.status in {S.DELIVERED, S.RETURNED}:
            delivered = [event for event in shipment.events if event.status is S.DELIVERED]
            assert shipment.delivered_at == delivered[-1].occurred_at, order
        else:
            assert shipment.delivered_at is None, order
        if order.status in {S.SHIPPED, S.IN_TRANSIT}:
            assert shipment.promised_date >= TODAY, order


def test_demo_agents_can_log_in_with_the_listed_passwords(session: Session) -> None:
    agents = {agent.email: agent for agent in session.scalars(select(Agent))}
    hasher = PasswordHasher()

    assert set(agents) == {email for email, _password, _role in DEMO_LOGINS}
    for email, password, role in DEMO_LOGINS:
        assert hasher.verify(agents[email].password_hash, password)
        assert agents[email].role.value == role and agents[email].active
    assert [role for _email, _password, role in DEMO_LOGINS].count("lead") == 2


def test_seeding_refuses_a_database_that_has_data(session: Session) -> None:
    assert not database_is_empty(session)
    with pytest.raises(ValueError, match="empty database"):
        seed_demo_data(session, TODAY)


def test_a_migrated_database_starts_empty(db_session: Session) -> None:
    assert database_is_empty(db_session)


def test_the_same_day_gives_the_same_rows(
    seeded: tuple[sessionmaker[Session], SeedSummary], tmp_path: Path
) -> None:
    factory, _summary = _seeded(sqlite_settings(tmp_path / "again.db"), TODAY)
    with seeded[0]() as first, factory() as second:
        assert _fingerprint(first) == _fingerprint(second)
    factory.kw["bind"].dispose()


def test_another_day_only_shifts_the_dates(
    seeded: tuple[sessionmaker[Session], SeedSummary], tmp_path: Path
) -> None:
    shift = timedelta(days=40)
    factory, _summary = _seeded(sqlite_settings(tmp_path / "later.db"), TODAY + shift)
    with seeded[0]() as first, factory() as later:
        expected = [
            (number, status, email, placed_at + shift)
            for number, status, email, placed_at in _fingerprint(first)
        ]
        assert _fingerprint(later) == expected
        first_events = first.scalars(select(ShipmentEvent.occurred_at).order_by(ShipmentEvent.id)).all()
        later_events = later.scalars(select(ShipmentEvent.occurred_at).order_by(ShipmentEvent.id)).all()
        assert [moment + shift for moment in first_events] == later_events
    factory.kw["bind"].dispose()


@pytest.mark.postgres
def test_seed_on_postgres(postgres_settings: Settings) -> None:
    factory, summary = _seeded(postgres_settings, TODAY)
    try:
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(Order)) == summary.orders >= 1000
            assert set(session.scalars(select(Order.status).distinct())) == set(OrderStatus)
            ana = session.scalars(select(Order).where(Order.number == "100001")).one()
            assert ana.customer.email == "ana.souza@example.com"
            assert ana.placed_at.tzinfo is not None
    finally:
        factory.kw["bind"].dispose()
