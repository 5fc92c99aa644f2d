"""The gateway's scheduler: one replica per job, and surveys sent only into quiet bot-mode chats.

Rasa is replaced by an httpx mock transport here; tests/e2e/test_complaints.py sends a survey
through the real Rasa server.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import csat
from bot.crm.conversations import get_or_create_conversation, store_inbound
from bot.crm.models import (
    AuthorKind,
    ConversationMode,
    CsatSurvey,
    JobLease,
    Message,
    SurveyStatus,
    utcnow,
)
from bot.demo.seed import seed_demo_data
from bot.rasa_client import RasaClient
from bot.scheduler import Scheduler, acquire_lease
from bot.settings import Settings

EVERY_TIME = timedelta(0)
TTL = timedelta(minutes=2)


def test_only_one_replica_holds_a_job_until_its_lease_expires(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker.begin() as session:
        assert acquire_lease(session, "sla_breaches", "gateway-a", TTL, EVERY_TIME)
    with db_sessionmaker.begin() as session:
        assert not acquire_lease(session, "sla_breaches", "gateway-b", TTL, EVERY_TIME)
        assert acquire_lease(session, "sla_breaches", "gateway-a", TTL, EVERY_TIME)  # the holder renews
    with db_sessionmaker.begin() as session:
        session.get_one(JobLease, "sla_breaches").expires_at = utcnow() - timedelta(seconds=1)
    with db_sessionmaker.begin() as session:
        assert acquire_lease(
            session, "sla_breaches", "gateway-b", TTL, EVERY_TIME
        )  # a crashed holder is replaced


def test_a_daily_job_does_not_run_again_the_same_day(db_sessionmaker: sessionmaker[Session]) -> None:
    with db_sessionmaker.begin() as session:
        assert acquire_lease(session, "rescore_customers", "gateway-a", TTL, timedelta(hours=24))
    with db_sessionmaker.begin() as session:
        assert not acquire_lease(session, "rescore_customers", "gateway-a", TTL, timedelta(hours=24))


class FakeRasa:
    """Answers trigger_intent like Rasa does, and remembers who was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            return httpx.Response(503, text="model not ready")
        sender = request.url.path.split("/")[2]
        self.asked.append(sender)
        survey_id = int(json.loads(request.content)["entities"]["csat_survey_id"])
        return httpx.Response(
            200, json={"messages": [{"recipient_id": sender, "text": f"rate survey {survey_id}"}]}
        )


async def deliver(settings: Settings, db: sessionmaker[Session], rasa: FakeRasa) -> None:
    client = RasaClient(settings, transport=httpx.MockTransport(rasa))
    try:
        await Scheduler(db, client, settings).deliver_surveys()
    finally:
        await client.aclose()


async def test_surveys_go_to_quiet_bot_chats_and_wait_otherwise(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    settings = settings.model_copy(update={"survey_quiet_seconds": 120.0})
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
        quiet = get_or_create_conversation(session, "web", "quiet")
        busy = get_or_create_conversation(session, "web", "busy")
        with_agent = get_or_create_conversation(session, "web", "with-agent")
        with_agent.mode = ConversationMode.AGENT
        store_inbound(session, busy, "still typing")  # just now: not quiet
        old = store_inbound(session, quiet, "thanks")
        old.created_at = utcnow() - timedelta(minutes=10)
        ids = {
            c.external_id: csat.request_survey(session, trigger="ticket_resolved", conversation=c).id  # type: ignore[union-attr]
            for c in (quiet, busy, with_agent)
        }
    rasa = FakeRasa()
    await deliver(settings, db_sessionmaker, rasa)
    with db_sessionmaker() as session:
        assert rasa.asked == [quiet.sender_id]
        sent = session.scalars(
            select(Message).where(Message.conversation_id == quiet.id, Message.author_kind == AuthorKind.BOT)
        ).all()
        assert [m.text for m in sent] == [f"rate survey {ids['quiet']}"]
        assert session.get_one(CsatSurvey, ids["busy"]).status is SurveyStatus.PENDING
        assert session.get_one(CsatSurvey, ids["with-agent"]).status is SurveyStatus.PENDING


async def test_rasa_down_keeps_the_survey_pending_and_counts_the_attempt(
    settings: Settings, db_sessionmaker: sessionmaker[Session]
) -> None:
    with db_sessionmaker.begin() as session:
        conversation = get_or_create_conversation(session, "web", "quiet")
        survey_id = csat.request_survey(session, trigger="conversation_end", conversation=conversation).id  # type: ignore[union-attr]
    await deliver(
        settings.model_copy(update={"survey_quiet_seconds": 0.0}), db_sessionmaker, FakeRasa(fail=True)
    )
    with db_sessionmaker() as session:
        survey = session.get_one(CsatSurvey, survey_id)
        assert survey.status is SurveyStatus.PENDING and survey.delivery_attempts == 1
