"""Fixtures for the action tests: a seeded CRM the actions use as their process-wide database."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

import actions.common
from actions import knowledge
from bot.crm.models import utcnow
from bot.demo.seed import seed_demo_data
from bot.settings import Settings
from knowledge_base.live import LiveIndex
from tests.support.mail import MailSink


@pytest.fixture
def crm(
    settings: Settings, db_sessionmaker: sessionmaker[Session], mail_sink: MailSink
) -> sessionmaker[Session]:
    """A seeded CRM that the actions use as their process-wide database, and a real SMTP server on
    loopback that keeps the mails they send (one-time codes).

    Seeded for today, as `make run` does: the actions compare the demo's dates (a promised delivery,
    a delivery inside the returns window) with the real clock."""
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, utcnow().date())
    return actions.common.configure(
        settings.model_copy(update={"smtp_host": mail_sink.host, "smtp_port": mail_sink.port})
    )


@pytest.fixture(autouse=True)
def no_search_index(monkeypatch: pytest.MonkeyPatch, db_sessionmaker: sessionmaker[Session]) -> None:
    """No loaded knowledge-base index unless a test loads one (the `sender` fixture of the knowledge
    tests): a flow's first action then starts the flow, whatever a search would have said."""
    monkeypatch.setattr(knowledge, "kb_index", lambda: LiveIndex(db_sessionmaker))
