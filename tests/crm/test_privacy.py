"""GDPR export and erasure on a real database, with a tracker store written by Rasa itself."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import handoff, privacy, tickets
from bot.crm.conversations import get_or_create_conversation
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.crm.models import (
    AuditLog,
    Base,
    Conversation,
    Customer,
    Message,
    MessageStatus,
    Order,
    Ticket,
)
from bot.errors import NotFound
from bot.settings import Settings
from tests.support.privacy_shop import (
    ANA_ADDRESS,
    ANA_CHAT,
    ANA_EMAIL,
    ANA_NAME,
    ANA_PHONE,
    ANA_SECRET,
    JONAS_SECRET,
    SENDERS,
    Shop,
    build_shop,
    write_rasa_trackers,
)


@pytest.fixture(scope="session")
def _tracker_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trackers") / "rasa-tracker.db"
    write_rasa_trackers(path)
    return path


@pytest.fixture
def tracker_db(tmp_path: Path, _tracker_template: Path) -> Path:
    """A Rasa tracker store (SQLite) holding a short conversation for each of SENDERS."""
    path = tmp_path / "rasa-tracker.db"
    shutil.copyfile(_tracker_template, path)
    return path


@pytest.fixture
def trackers(tracker_db: Path) -> Iterator[privacy.TrackerStore]:
    store = privacy.TrackerStore(f"sqlite:///{tracker_db}")
    yield store
    store.close()


@pytest.fixture
def shop(db_session: Session) -> Shop:
    built = build_shop(db_session)
    db_session.commit()
    return built


def everything_in(session: Session) -> str:
    """Every value of every row of every CRM table, as one lower-cased text to search."""
    parts: list[str] = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            parts.extend(json.dumps(value, default=str) for value in row)
    return "\n".join(parts).lower()


def table_counts(session: Session) -> dict[str, int]:
    return {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


# --- export -----------------------------------------------------------------------------------------


def test_the_export_holds_her_orders_messages_tickets_and_trackers(
    db_session: Session, shop: Shop, trackers: privacy.TrackerStore
) -> None:
    document = privacy.export_customer(db_session, shop.ana_id, trackers)

    assert document["customer"]["email"] == ANA_EMAIL and document["customer"]["phone"] == ANA_PHONE
    assert {order["number"] for order in document["orders"]} == {"100001", "100002", "100003"}
    lantern = next(order for order in document["orders"] if order["number"] == "100002")
    assert lantern["items"] and ANA_ADDRESS in lantern["shipping_address"]
    assert Decimal(lantern["total"]) > 0
    assert {identity["channel"] for identity in document["identities"]} == {"web", "telegram"}
    texts = [m["text"] for c in document["conversations"] for m in c["messages"]]
    assert ANA_SECRET in texts and f"I am sorry, {ANA_NAME}. Filed as a ticket." in texts
    # The anonymous chat where she typed her e-mail is hers too.
    assert any(ANA_EMAIL.upper() in text for text in texts)
    references = {ticket["reference"] for ticket in document["tickets"]}
    assert "KF-000001" in references  # the demo's resolved chair ticket
    complaint = next(t for t in document["tickets"] if t["description"] == ANA_SECRET)
    assert [e["kind"] for e in complaint["events"]].count("note") == 1
    assert [s["score"] for s in document["csat_surveys"] if s["score"] is not None] == [4]
    assert [u["update_id"] for u in document["telegram_updates"]] == [5001]
    assert {row["action"] for row in document["audit_log"]} >= {"identity_linked", "handoff_requested"}
    tracked = {
        t["sender_id"]: [e["data"].get("text") for e in t["events"]] for t in document["rasa_trackers"]
    }
    assert f"rasa heard {SENDERS['ana_web']}" in tracked[SENDERS["ana_web"]]
    assert f"rasa answered {SENDERS['ana_telegram']}" in tracked[SENDERS["ana_telegram"]]
    # ISO 8601 datetimes, tracker times included.
    assert datetime.fromisoformat(document["customer"]["created_at"]).tzinfo is not None
    assert all(datetime.fromisoformat(e["timestamp"]) for t in document["rasa_trackers"] for e in t["events"])

    text = privacy.to_json(document).lower()
    for other in ("jonas", "100004", JONAS_SECRET, SENDERS["jonas"], "mei.chen"):
        assert other.lower() not in text


def test_the_export_is_the_same_document_every_time(
    db_session: Session, shop: Shop, trackers: privacy.TrackerStore
) -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    first = privacy.to_json(privacy.export_customer(db_session, shop.ana_id, trackers, now))
    second = privacy.to_json(privacy.export_customer(db_session, shop.ana_id, trackers, now))
    assert first == second
    assert list(json.loads(first))[:5] == ["format", "exported_at", "customer_id", "erased", "customer"]


def test_an_unknown_customer_is_refused(
    db_session: Session, shop: Shop, trackers: privacy.TrackerStore
) -> None:
    with pytest.raises(NotFound, match="no customer 999999"):
        privacy.export_customer(db_session, 999999, trackers)
    with pytest.raises(NotFound, match="no customer 999999"):
        privacy.erase_customer(db_session, 999999, trackers)


def test_a_store_rasa_never_created_has_no_events_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "rasa-tracker.db"
    store = privacy.TrackerStore(f"sqlite:///{missing}")
    assert store.events(["anyone"]) == {"anyone": []}
    assert store.delete(["anyone"]) == 0
    assert not missing.exists()


# --- erase -------------------------------------------------------------------------------------------


def assert_erased_everywhere(
    factory: sessionmaker[Session], shop: Shop, trackers: privacy.TrackerStore
) -> None:
    """The checks shared by SQLite and PostgreSQL: run after Ana was erased."""
    with factory() as session:
        everything = everything_in(session)
        for personal in (ANA_EMAIL, ANA_PHONE, ANA_NAME, ANA_SECRET, ANA_ADDRESS, ANA_CHAT, "visitor-ana"):
            assert personal.lower() not in everything, f"{personal!r} is still in the CRM"
        # Jonas is untouched.
        jonas = session.get(Customer, shop.jonas_id)
        assert jonas is not None and jonas.email == "jonas.becker@example.com"
        assert JONAS_SECRET.lower() in everything
        assert session.scalars(select(Ticket).where(Ticket.description == JONAS_SECRET)).one()
        # Her orders stay for the accounts, with their amounts.
        totals = session.scalars(select(Order.total).where(Order.customer_id == shop.ana_id)).all()
        assert len(totals) == 3 and all(total > 0 for total in totals)
        # Her tickets still count for the service figures.
        assert (session.scalar(select(func.count()).where(Ticket.customer_id == shop.ana_id)) or 0) >= 2
        erased = session.scalars(
            select(AuditLog).where(
                AuditLog.action == "customer_erased", AuditLog.record_id == str(shop.ana_id)
            )
        ).one()
        assert erased.details["conversations"] == 3 and erased.details["tracker_events"] == 6
        noted = session.scalars(select(AuditLog).where(AuditLog.action == "contact_noted")).one()
        assert noted.details == {"contact": privacy.ERASED, "by": "Ada"}
        # Nothing of hers waits for an agent any more.
        assert handoff.open_handoff(session, shop.ana_telegram_conversation_id) is None
        active = select(Ticket).where(Ticket.customer_id == shop.ana_id, Ticket.status.in_(tickets.ACTIVE))
        assert session.scalars(active).all() == []
        # A reply still waiting for Telegram will never be sent.
        waiting = session.scalars(
            select(Message).where(Message.conversation_id == shop.ana_telegram_conversation_id)
        ).all()
        assert {m.status for m in waiting} <= {
            MessageStatus.PROCESSED,
            MessageStatus.RECEIVED,
            MessageStatus.FAILED,
        }
    remaining = trackers.events(list(SENDERS.values()))
    assert remaining[SENDERS["ana_web"]] == [] and remaining[SENDERS["ana_telegram"]] == []
    assert len(remaining[SENDERS["jonas"]]) == 3


def test_erasing_leaves_nothing_of_her_and_everything_of_others(
    db_sessionmaker: sessionmaker[Session], db_session: Session, shop: Shop, trackers: privacy.TrackerStore
) -> None:
    with db_sessionmaker.begin() as session:
        erasure = privacy.erase_customer(session, shop.ana_id, trackers)
    assert not erasure.already_erased and erasure.tracker_events == 6

    assert_erased_everywhere(db_sessionmaker, shop, trackers)


def test_erasing_twice_changes_nothing_the_second_time(
    db_sessionmaker: sessionmaker[Session], shop: Shop, trackers: privacy.TrackerStore
) -> None:
    with db_sessionmaker.begin() as session:
        privacy.erase_customer(session, shop.ana_id, trackers)
    with db_sessionmaker() as session:
        before, snapshot = table_counts(session), everything_in(session)

    with db_sessionmaker.begin() as session:
        again = privacy.erase_customer(session, shop.ana_id, trackers)

    assert again.already_erased and "already erased" in again.describe()
    with db_sessionmaker() as session:
        assert table_counts(session) == before and everything_in(session) == snapshot
    assert len(trackers.events([SENDERS["jonas"]])[SENDERS["jonas"]]) == 3


def test_her_browser_and_telegram_chat_start_afresh_after_erasure(
    db_sessionmaker: sessionmaker[Session], shop: Shop, trackers: privacy.TrackerStore
) -> None:
    with db_sessionmaker.begin() as session:
        privacy.erase_customer(session, shop.ana_id, trackers)

    with db_sessionmaker.begin() as session:
        chat = get_or_create_conversation(session, "telegram", ANA_CHAT)
        session.flush()
        assert chat.id != shop.ana_telegram_conversation_id
        assert chat.customer_id is None
        old = session.get(Conversation, shop.ana_telegram_conversation_id)
        assert old is not None and old.mode.value == "closed"


def test_the_export_of_an_erased_customer_holds_nothing_personal(
    db_sessionmaker: sessionmaker[Session], shop: Shop, trackers: privacy.TrackerStore
) -> None:
    with db_sessionmaker.begin() as session:
        privacy.erase_customer(session, shop.ana_id, trackers)
    with db_sessionmaker() as session:
        document = privacy.export_customer(session, shop.ana_id, trackers)
    assert document["erased"] is True and document["identities"] == []
    assert all(not t["events"] for t in document["rasa_trackers"])
    text = privacy.to_json(document).lower()
    assert ANA_EMAIL not in text and ANA_SECRET.lower() not in text


@pytest.mark.postgres
def test_erasing_on_postgresql(postgres_settings: Settings, trackers: privacy.TrackerStore) -> None:
    upgrade_database(postgres_settings)
    engine = make_engine(postgres_settings)
    factory = make_sessionmaker(engine)
    try:
        with factory.begin() as session:
            shop = build_shop(session)
        with factory() as session:
            assert ANA_SECRET in privacy.to_json(privacy.export_customer(session, shop.ana_id, trackers))
        with factory.begin() as session:
            privacy.erase_customer(session, shop.ana_id, trackers)
        assert_erased_everywhere(factory, shop, trackers)
        with factory.begin() as session:
            assert privacy.erase_customer(session, shop.ana_id, trackers).already_erased
    finally:
        engine.dispose()
