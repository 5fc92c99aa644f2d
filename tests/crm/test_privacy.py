"""GDPR export and erasure on a real database, with a tracker store written by Rasa itself."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import csat, handoff, privacy, sla, tickets
from bot.crm.audit import audit
from bot.crm.conversations import get_or_create_conversation, store_inbound, store_outbound
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.migrate import upgrade_database
from bot.crm.models import (
    AuditLog,
    AuthorKind,
    Base,
    Conversation,
    Customer,
    KbArticle,
    KbFeedback,
    KbGap,
    Message,
    MessageStatus,
    Order,
    TelegramUpdate,
    Ticket,
    TicketStatus,
)
from bot.crm.orders import link_conversation
from bot.demo.seed import seed_demo_data
from bot.errors import NotFound
from bot.settings import PROJECT_ROOT, Settings

RASA_PYTHON = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"
POLICY_FILE = Settings(_env_file=None).sla_policy_file  # type: ignore[call-arg]
TODAY = date(2026, 11, 20)

ANA_EMAIL, ANA_PHONE, ANA_NAME = "ana.souza@example.com", "+351912345678", "Ana Souza"
ANA_ADDRESS = "Rua das Flores 28"
ANA_CHAT = "777000111"  # her Telegram chat id
ANA_SECRET = "my purple flamingo lantern arrived cracked"
JONAS_SECRET = "the walrus-shaped doorstop never came"
SENDERS = {"ana_web": "sender-ana-web", "ana_telegram": "sender-ana-telegram", "jonas": "sender-jonas-web"}

# Run by Rasa's own Python: saves a tracker per sender id through rasa's SQLTrackerStore.
_WRITE_TRACKERS = """
import asyncio, sys
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

store = SQLTrackerStore(domain=Domain.empty(), dialect="sqlite", db=sys.argv[1])

async def main():
    for sender in sys.argv[2:]:
        tracker = DialogueStateTracker(sender, slots=[])
        tracker.update(ActionExecuted("action_listen"))
        tracker.update(UserUttered(f"rasa heard {sender}", intent={"name": "complaint", "confidence": 0.9}))
        tracker.update(BotUttered(f"rasa answered {sender}"))
        await store.save(tracker)

asyncio.run(main())
"""


def write_rasa_trackers(path: Path) -> None:
    """Have Rasa (its SQLTrackerStore, in .venv-rasa) save a tracker for each of SENDERS at `path`."""
    if not RASA_PYTHON.exists():
        pytest.fail(
            f"{RASA_PYTHON} is missing: run scripts/bootstrap.sh (these tests let Rasa write trackers)"
        )
    done = subprocess.run(
        [str(RASA_PYTHON), "-c", _WRITE_TRACKERS, str(path), *SENDERS.values()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


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


@dataclass
class Shop:
    ana_id: int
    jonas_id: int
    ana_telegram_conversation_id: int


def build_shop(session: Session) -> Shop:
    """The demo shop, plus chats, a complaint, a hand-over and a survey for Ana and a chat for Jonas."""
    seed_demo_data(session, TODAY)
    session.flush()
    ana = session.scalars(select(Customer).where(Customer.email == ANA_EMAIL)).one()
    jonas = session.scalars(select(Customer).where(Customer.email == "jonas.becker@example.com")).one()
    lantern = session.scalars(select(Order).where(Order.number == "100002")).one()

    # Her web chat: she proves an order, complains, asks for a person, rates the answer.
    web = get_or_create_conversation(session, "web", "visitor-ana-browser")
    web.sender_id = SENDERS["ana_web"]
    store_inbound(session, web, f"order 100002, {ANA_EMAIL}")
    link_conversation(session, web, ana)
    complaint_message = store_inbound(session, web, ANA_SECRET)
    store_outbound(session, web, AuthorKind.BOT, f"I am sorry, {ANA_NAME}. Filed as a ticket.")
    complaint = tickets.open_ticket(
        session, kind="complaint", category="product_defect", subject="A faulty product (order #100002)",
        description=ANA_SECRET, actor="bot", customer_id=ana.id, conversation_id=web.id,
        order_id=lantern.id, source_message_id=complaint_message.id, policy=sla.load_policy(POLICY_FILE),
    )  # fmt: skip
    tickets.customer_replied(session, complaint, f"{ANA_SECRET}, call me on {ANA_PHONE}", 7)
    tickets.add_event(session, complaint, "agent:1", "note", {"text": f"{ANA_NAME} sounded upset"})
    handoff.escalate(session, web, "customer_asked", policy=sla.load_policy(POLICY_FILE), minutes_per_chat=4)
    handoff.record_contact(session, web.id, ANA_EMAIL)
    # Audit details are free-form: one that names her must lose the name, the row must stay.
    audit(session, "agent:1", "contact_noted", "conversation", web.id, {"contact": ANA_EMAIL, "by": "Ada"})
    tickets.change_status(session, complaint, TicketStatus.OPEN, "agent:1")
    tickets.change_status(
        session, complaint, TicketStatus.RESOLVED, "agent:1", resolution=f"Sent {ANA_NAME} a new lantern."
    )
    survey = csat.request_survey(session, trigger="ticket_resolved", ticket=complaint)
    assert survey is not None
    tickets.record_survey_answer(
        session, survey, 4, f"thanks, {ANA_SECRET} is fixed", policy=sla.load_policy(POLICY_FILE)
    )
    article = KbArticle(slug="returns")
    session.add(article)
    session.flush()
    session.add(
        KbFeedback(
            article_id=article.id, conversation_id=web.id, query=ANA_SECRET, shown_as="answer", score=0.7
        )
    )
    session.add(KbGap(question=f"{ANA_SECRET}?", reason="no_match", conversation_id=web.id))

    # Her Telegram chat, linked by proving the same order; a reply still waits in the outbox.
    telegram = get_or_create_conversation(session, "telegram", ANA_CHAT)
    telegram.sender_id = SENDERS["ana_telegram"]
    store_inbound(session, telegram, f"hi, it's {ANA_NAME} again", channel_message_id="5001")
    link_conversation(session, telegram, ana)
    store_outbound(session, telegram, AuthorKind.BOT, f"Welcome back, {ANA_NAME}!")
    handoff.escalate(
        session, telegram, "customer_asked", policy=sla.load_policy(POLICY_FILE), minutes_per_chat=4
    )
    session.add(
        TelegramUpdate(
            update_id=5001,
            payload={
                "update_id": 5001,
                "message": {
                    "message_id": 12,
                    "chat": {"id": int(ANA_CHAT), "type": "private", "first_name": "Ana"},
                    "from": {"id": int(ANA_CHAT), "first_name": "Ana", "last_name": "Souza"},
                    "text": f"hi, it's {ANA_NAME} again",
                },
            },
        )
    )

    # An anonymous chat in which she typed her e-mail but never proved an order.
    anonymous = get_or_create_conversation(session, "web", "visitor-ana-phone")
    store_inbound(session, anonymous, f"where is my parcel? I am {ANA_EMAIL.upper()}")

    # Jonas: a chat of his own, with a complaint.
    jonas_chat = get_or_create_conversation(session, "web", "visitor-jonas")
    jonas_chat.sender_id = SENDERS["jonas"]
    link_conversation(session, jonas_chat, jonas)
    store_inbound(session, jonas_chat, JONAS_SECRET)
    tickets.open_ticket(
        session, kind="complaint", category="delivery_problem", subject="Doorstop missing",
        description=JONAS_SECRET, actor="bot", customer_id=jonas.id, conversation_id=jonas_chat.id,
        policy=sla.load_policy(POLICY_FILE),
    )  # fmt: skip
    session.flush()
    return Shop(ana.id, jonas.id, telegram.id)


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
