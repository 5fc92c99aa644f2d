"""Fixtures for the knowledge base: a database with the demo data and the 92 seed articles published.

A pytest plugin (tests/conftest.py loads it), so the knowledge base's, the actions' and the API's
tests share one template database.

Embedding the seed articles takes a few seconds after the encoder's ~13 s load, so one database is
built per test run and each test gets its own copy of it.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

import actions.common
from bot.crm import db
from bot.crm.migrate import upgrade_database
from bot.crm.models import Agent, AuthorKind, Conversation, Direction, Message, MessageStatus
from bot.demo.seed import seed_demo_data
from bot.settings import Settings
from knowledge_base import seeds
from knowledge_base.curation import Actor
from tests.conftest import sqlite_settings

SEED_DAY = date(2026, 11, 20)


@pytest.fixture(scope="session")
def _kb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kb-template") / "kefu.db"
    settings = sqlite_settings(path)
    upgrade_database(settings)
    engine = db.make_engine(settings)
    with db.make_sessionmaker(engine).begin() as session:
        seed_demo_data(session, SEED_DAY)
        seeds.import_articles(session, seeds.read_seed_files())
    engine.dispose()
    return path


@pytest.fixture
def kb(settings: Settings, _kb_template: Path) -> sessionmaker[Session]:
    """This test's copy of the seeded database with published articles; also the process-wide one."""
    shutil.copyfile(_kb_template, make_url(settings.database_url).database or "")
    return actions.common.configure(settings)


def lead(session: Session, email: str = "lead@kefu.example") -> Actor:
    agent = session.scalar(select(Agent).where(Agent.email == email))
    assert agent is not None
    return Actor(agent=agent, source="test")


def second_lead(session: Session) -> Actor:
    """The demo data's other lead, who reviews what `lead` writes."""
    return lead(session, "rui@kefu.example")


def chat_with_turns(
    session: Session, *turns: tuple[AuthorKind, str], visitor: str = "gap-chat"
) -> tuple[int, int]:
    """A web chat with these turns; its id and the id of its last message."""
    chat = Conversation(channel="web", external_id=visitor, sender_id=visitor)
    session.add(chat)
    session.flush()
    message = None
    for kind, text in turns:
        inbound = kind == AuthorKind.CUSTOMER
        message = Message(
            conversation_id=chat.id,
            channel="web",
            direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
            author_kind=kind,
            text=text,
            status=MessageStatus.PROCESSED if inbound else MessageStatus.SENT,
        )
        session.add(message)
        session.flush()
    assert message is not None
    return chat.id, message.id
