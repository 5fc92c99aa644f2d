"""The rules of proof: what guessing costs the guesser, never the customer; one-time codes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import orders, proof
from bot.crm.conversations import get_or_create_conversation
from bot.crm.models import Conversation, Customer, OneTimeCode, utcnow
from bot.demo.seed import seed_demo_data
from bot.settings import Settings

ANA = orders.Contact(email="ana.souza@example.com")
STRANGER = "198.51.100.7"


@pytest.fixture
def seeded(db_session: Session) -> Session:
    seed_demo_data(db_session, date(2026, 11, 20))
    db_session.flush()
    return db_session


@pytest.fixture
def config() -> Settings:
    return Settings(secret_key="k" * 40)


def chat(session: Session, name: str) -> Conversation:
    return get_or_create_conversation(session, "web", name)


def guess(session: Session, config: Settings, chat_name: str, number: str, contact: orders.Contact,
          address: str | None = STRANGER) -> proof.Attempt:  # fmt: skip
    """One wrong or right proof, recorded as the order form records it."""
    attempt = proof.Attempt(chat(session, chat_name), address, number, contact)
    found = orders.verify_order_owner(session, number, contact)
    proof.record(session, attempt, config, succeeded=found is not None)
    return attempt


def ana(session: Session) -> Customer:
    customer = session.scalars(select(Customer).where(Customer.email == ANA.email)).one()
    return customer


def test_contact_keys_hide_the_contact_and_ignore_its_case(config: Settings) -> None:
    key = proof.contact_key(ANA, config.secret_key)
    assert key == proof.contact_key(orders.Contact(email="ana.souza@example.com"), config.secret_key)
    assert "ana" not in key and len(key) == 64
    assert key != proof.contact_key(orders.Contact(email="mei.chen@example.com"), config.secret_key)
    assert proof.contact_key(orders.Contact(phone_digits="00351912345678"), "k") == proof.contact_key(
        orders.Contact(phone_digits="351912345678"), "k"
    )  # national and international forms of one phone


def test_one_guess_per_fresh_chat_still_pauses_the_guessers_address(
    seeded: Session, config: Settings
) -> None:
    # The attack: a new chat for every order number, so no chat ever fails twice.
    for index in range(config.verification_max_failures_per_address):
        attempt = guess(
            seeded, config, f"fresh-{index}", f"{100001 + index}", orders.Contact(email="x@evil.test")
        )
    assert proof.paused(seeded, proof.Attempt(chat(seeded, "fresh-new"), STRANGER), config)
    # The owner, elsewhere, is not held up.
    assert not proof.paused(seeded, proof.Attempt(chat(seeded, "owner"), "203.0.113.5"), config)
    assert attempt.conversation.customer_id is None


def test_a_chat_pauses_after_its_own_failures(seeded: Session, config: Settings) -> None:
    for _ in range(config.verification_max_failures - 1):
        guess(seeded, config, "one-chat", "100001", orders.Contact(email="x@evil.test"), address=None)
    assert not proof.paused(seeded, proof.Attempt(chat(seeded, "one-chat"), None), config)
    guess(seeded, config, "one-chat", "100001", orders.Contact(email="x@evil.test"), address=None)
    assert proof.paused(seeded, proof.Attempt(chat(seeded, "one-chat"), None), config)


def test_guessing_at_an_email_makes_it_need_the_code_but_never_locks_its_owner(
    seeded: Session, config: Settings
) -> None:
    owner = proof.Attempt(chat(seeded, "owner"), "203.0.113.5", "100001", ANA)
    assert not proof.under_attack(seeded, owner, config)
    for index in range(config.verification_max_failures):
        # Ana's e-mail with order numbers that aren't hers, from many chats and addresses.
        guess(seeded, config, f"g{index}", "100004", ANA, address=f"198.51.100.{index}")
    assert proof.under_attack(seeded, owner, config)  # her right details now need the code too
    assert not proof.paused(seeded, owner, config)  # but she is never refused


def test_guessing_at_an_order_makes_it_need_the_code(seeded: Session, config: Settings) -> None:
    for index in range(config.verification_max_failures):
        guess(seeded, config, f"o{index}", "100001", orders.Contact(email=f"guess{index}@evil.test"))
    owner = proof.Attempt(chat(seeded, "owner"), None, "100001", ANA)
    assert proof.under_attack(seeded, owner, config)
    assert not proof.paused(seeded, owner, config)


def test_a_code_proves_the_chat_once(seeded: Session, config: Settings) -> None:
    conversation = chat(seeded, "coded")
    issued = proof.issue_code(seeded, conversation, ana(seeded), config)
    assert issued is not None and len(issued.code) == 6 and issued.email == ANA.email
    stored = seeded.scalars(select(OneTimeCode)).one()
    assert issued.code not in stored.code_hash  # kept hashed
    assert proof.pending_customer(seeded, conversation) == ana(seeded).id

    wrong = "000000" if issued.code != "000000" else "111111"
    assert proof.check_code(seeded, conversation, wrong, config) == "wrong"
    assert proof.tries_left(seeded, conversation, config) == config.one_time_code_tries - 1
    assert conversation.customer_id is None and not proof.trusted(conversation, config)

    assert proof.check_code(seeded, conversation, issued.code, config) == "ok"
    assert conversation.customer_id == ana(seeded).id and conversation.proof == "code"
    assert proof.trusted(conversation, config)
    assert proof.check_code(seeded, conversation, issued.code, config) == "none"  # used once only


def test_three_wrong_tries_spend_the_code(seeded: Session, config: Settings) -> None:
    conversation = chat(seeded, "spent")
    issued = proof.issue_code(seeded, conversation, ana(seeded), config)
    assert issued is not None
    wrong = "000000" if issued.code != "000000" else "111111"
    outcomes = [
        proof.check_code(seeded, conversation, wrong, config) for _ in range(config.one_time_code_tries)
    ]
    assert outcomes == ["wrong"] * (config.one_time_code_tries - 1) + ["spent"]
    assert proof.check_code(seeded, conversation, issued.code, config) == "none"
    assert conversation.customer_id is None


def test_an_old_code_is_refused_and_a_new_one_replaces_the_old(seeded: Session, config: Settings) -> None:
    conversation = chat(seeded, "old")
    first = proof.issue_code(seeded, conversation, ana(seeded), config)
    second = proof.issue_code(seeded, conversation, ana(seeded), config)
    assert first is not None and second is not None
    if first.code != second.code:
        assert proof.check_code(seeded, conversation, first.code, config) == "wrong"
    newest = seeded.scalars(select(OneTimeCode).order_by(OneTimeCode.id.desc())).first()
    assert newest is not None
    newest.expires_at = utcnow() - timedelta(seconds=1)
    assert proof.check_code(seeded, conversation, second.code, config) == "spent"


def test_codes_per_hour_are_capped(seeded: Session, config: Settings) -> None:
    conversation = chat(seeded, "many")
    sent = [
        proof.issue_code(seeded, conversation, ana(seeded), config)
        for _ in range(config.one_time_codes_per_hour + 1)
    ]
    assert all(code is not None for code in sent[:-1]) and sent[-1] is None


def test_a_proof_expires(seeded: Session, config: Settings) -> None:
    conversation = chat(seeded, "expiring")
    orders.link_conversation(seeded, conversation, ana(seeded), proof="code")
    proof.expire(seeded, conversation, config)
    assert proof.trusted(conversation, config)

    conversation.verified_at = utcnow() - timedelta(hours=config.verification_valid_hours, minutes=1)
    assert not proof.trusted(conversation, config)
    proof.expire(seeded, conversation, config)
    assert conversation.customer_id is None and conversation.proof is None


def test_an_order_proof_does_not_downgrade_a_code(seeded: Session, config: Settings) -> None:
    conversation = chat(seeded, "both")
    orders.link_conversation(seeded, conversation, ana(seeded), proof="code")
    orders.link_conversation(seeded, conversation, ana(seeded))
    assert conversation.proof == "code"


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("123456", "123456"),
        ("it's 123 456", "123456"),
        ("123-456.", "123456"),
        ("1234567", None),
        ("12345", None),
    ],
)
def test_codes_are_read_as_typed(typed: str, code: str | None) -> None:
    assert proof.code_in(typed) == code


def test_masked_email() -> None:
    assert proof.masked("ana.souza@example.com") == "a•••@example.com"
