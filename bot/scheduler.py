"""Scheduled jobs in the gateway: unanswered messages, SLA breaches, closing resolved tickets,
surveys, nightly scoring.

Every gateway runs the scheduler; a lease row per job (`job_leases`) makes sure only one replica
runs a job at a time, so several gateways never double an SLA event or send a survey twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from bot.channels.recovery import PendingAnswers
from bot.crm import csat, scoring, sla, tickets
from bot.crm.conversations import store_outbound
from bot.crm.models import (
    AuthorKind,
    Conversation,
    ConversationMode,
    CsatSurvey,
    Direction,
    JobLease,
    Message,
    SurveyStatus,
    utcnow,
)
from bot.crm.value import ValueConfig
from bot.errors import KefuError
from bot.live import LiveHub
from bot.rasa_client import BotReply, RasaClient
from bot.settings import Settings

logger = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 10
SURVEYS_PER_RUN = 20


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire_lease(session: Session, name: str, holder: str, ttl: timedelta, every: timedelta) -> bool:
    """Take the job's lease if it is free (or ours) and the job is due; False means someone else has it."""
    now = utcnow()
    taken = session.execute(
        update(JobLease)
        .where(
            JobLease.name == name,
            (JobLease.holder == holder) | (JobLease.expires_at < now),
            (JobLease.last_run_at.is_(None)) | (JobLease.last_run_at <= now - every),
        )
        .values(holder=holder, expires_at=now + ttl, last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount:  # type: ignore[attr-defined]  # an UPDATE returns a CursorResult
        return True
    if session.get(JobLease, name) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(JobLease(name=name, holder=holder, expires_at=now + ttl, last_run_at=now))
    except IntegrityError:
        return False  # another replica created it a moment ago
    return True


@dataclass
class Job:
    name: str
    every: timedelta
    run: Callable[[], Awaitable[object]]


class Scheduler:
    """Runs each job at its interval in the background of the gateway's event loop."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        rasa: RasaClient,
        settings: Settings,
        hub: LiveHub | None = None,
    ) -> None:
        self.sessions = sessions
        self.rasa = rasa
        self.settings = settings
        self.holder = holder_id()
        self._tasks: list[asyncio.Task[None]] = []
        self.pending_answers = PendingAnswers(sessions, rasa, settings, hub)
        # Customer messages saved while a part was down are checked for far more often than the other
        # jobs run (`recovery_check_seconds`), so they are answered within seconds of its return.
        self.answer_pending = Job("answer_pending", timedelta(seconds=0), self.pending_answers.run)
        self.jobs = [
            Job("sla_breaches", timedelta(seconds=0), self.check_sla),
            Job("close_resolved", timedelta(minutes=10), self.close_resolved),
            Job("expire_surveys", timedelta(minutes=10), self.expire_surveys),
            Job("deliver_surveys", timedelta(seconds=0), self.deliver_surveys),
            Job("rescore_customers", timedelta(hours=24), self.rescore_customers),
        ]

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(), name="kefu-scheduler"),
            asyncio.create_task(self._recovery_loop(), name="kefu-recovery"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _recovery_loop(self) -> None:
        while True:
            try:
                if await run_in_threadpool(self.pending_answers.any_waiting):
                    await self._run_job(self.answer_pending)
            except Exception:
                logger.exception("checking for unanswered customer messages failed")
            await asyncio.sleep(self.settings.recovery_check_seconds)

    async def _loop(self) -> None:
        while True:
            await self.run_due()
            await asyncio.sleep(self.settings.scheduler_interval_seconds)

    async def run_due(self) -> None:
        """Run every job whose interval has passed and whose lease this process gets."""
        for job in (self.answer_pending, *self.jobs):
            await self._run_job(job)

    async def _run_job(self, job: Job) -> None:
        ttl = timedelta(seconds=max(60.0, self.settings.scheduler_interval_seconds * 4))
        try:
            if await run_in_threadpool(self._lease, job, ttl):
                await job.run()
        except Exception:
            # One failing job (the database away for a moment) must not stop the others or the loop.
            logger.exception("scheduled job %s failed", job.name)

    def _lease(self, job: Job, ttl: timedelta) -> bool:
        with self.sessions.begin() as session:
            return acquire_lease(session, job.name, self.holder, ttl, job.every)

    # --- the jobs ------------------------------------------------------------------------------

    async def check_sla(self) -> object:
        def work() -> int:
            policy = sla.load_policy(self.settings.sla_policy_file)
            with self.sessions.begin() as session:
                breaches = sla.check_breaches(session, policy, utcnow())
            for breach in breaches:
                logger.info("SLA breached: %s", breach)
            return len(breaches)

        return await run_in_threadpool(work)

    async def close_resolved(self) -> object:
        def work() -> int:
            with self.sessions.begin() as session:
                return len(tickets.close_resolved(session, self.settings.ticket_reopen_days))

        return await run_in_threadpool(work)

    async def expire_surveys(self) -> object:
        def work() -> int:
            with self.sessions.begin() as session:
                return csat.expire_unanswered(session)

        return await run_in_threadpool(work)

    async def rescore_customers(self) -> object:
        def work() -> object:
            with self.sessions.begin() as session:
                return scoring.rescore_all(session, value=ValueConfig.from_settings(self.settings))

        return await run_in_threadpool(work)

    async def deliver_surveys(self) -> object:
        """Ask pending surveys on the customer's channel through Rasa, when the chat is quiet."""
        due = await run_in_threadpool(self._surveys_to_send)
        sent = 0
        for survey_id, conversation_id, sender_id, reopen in due:
            try:
                if reopen:
                    await self.rasa.resume(sender_id)
                replies = await self.rasa.trigger_intent(
                    sender_id, "EXTERNAL_csat_request", {"csat_survey_id": str(survey_id)}
                )
            except KefuError as exc:
                logger.warning("survey %s not sent yet: %s", survey_id, exc)
                await run_in_threadpool(self._delivery_failed, survey_id)
                continue
            await run_in_threadpool(self._store_survey_messages, survey_id, conversation_id, replies)
            sent += 1
        return sent

    def _surveys_to_send(self) -> list[tuple[int, int, str, bool]]:
        now = utcnow()
        ready: list[tuple[int, int, str, bool]] = []
        with self.sessions.begin() as session:
            pending = session.scalars(
                select(CsatSurvey)
                .where(CsatSurvey.status == SurveyStatus.PENDING, CsatSurvey.conversation_id.is_not(None))
                .order_by(CsatSurvey.requested_at)
                .limit(SURVEYS_PER_RUN)
            ).all()
            for survey in pending:
                conversation = session.get(Conversation, survey.conversation_id)
                if conversation is None:
                    survey.status = SurveyStatus.UNDELIVERABLE
                    continue
                # With a person (or waiting for one): the agent's hand-back offers the survey instead.
                if conversation.mode in (ConversationMode.PENDING_AGENT, ConversationMode.AGENT):
                    continue
                quiet = timedelta(seconds=self.settings.survey_quiet_seconds)
                if _last_customer_message(session, conversation) > now - quiet:
                    continue
                ready.append(
                    (
                        survey.id,
                        conversation.id,
                        conversation.sender_id,
                        conversation.mode is ConversationMode.CLOSED,
                    )
                )
        return ready

    def _delivery_failed(self, survey_id: int) -> None:
        with self.sessions.begin() as session:
            survey = session.get_one(CsatSurvey, survey_id)
            survey.delivery_attempts += 1
            if survey.delivery_attempts >= MAX_DELIVERY_ATTEMPTS:
                survey.status = SurveyStatus.UNDELIVERABLE

    def _store_survey_messages(self, survey_id: int, conversation_id: int, replies: list[BotReply]) -> None:
        with self.sessions.begin() as session:
            conversation = session.get_one(Conversation, conversation_id)
            for reply in replies:
                store_outbound(session, conversation, AuthorKind.BOT, reply.text, reply.payload())
            survey = session.get_one(CsatSurvey, survey_id, populate_existing=True)
            # The action marks the survey asked; if the bot did not ask, it is not going to.
            if survey.status is SurveyStatus.PENDING:
                survey.status = SurveyStatus.UNDELIVERABLE


def _last_customer_message(session: Session, conversation: Conversation) -> datetime:
    latest = session.scalars(
        select(Message.created_at)
        .where(Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND)
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    return latest or datetime.min.replace(tzinfo=utcnow().tzinfo)
