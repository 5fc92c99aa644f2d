"""A customer complains through the real gateway, Rasa and action server; an agent resolves the ticket
and the customer's satisfaction survey arrives in the chat."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.crm import priority
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import (
    CsatSurvey,
    Customer,
    Order,
    Severity,
    SurveyStatus,
    Ticket,
    TicketEvent,
    TicketPriority,
    TicketStatus,
)
from bot.demo.seed import DEMO_PASSWORD_AGENT
from tests.support.stack import Stack, running_stack, stack_settings
from tests.support.visitors import named_visitor

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("complaints")
    # Surveys go out as soon as the chat is quiet, checked every second, so the test need not wait.
    settings = stack_settings(workdir).model_copy(
        update={"scheduler_interval_seconds": 1.0, "survey_quiet_seconds": 0.0}
    )
    with running_stack(workdir, settings=settings) as running:
        yield running


def say(stack: Stack, session: str, text: str) -> str:
    response = httpx.post(
        f"{stack.gateway_url}/api/web/messages",
        json={"session": named_visitor(session), "text": text},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return "\n".join(m["text"] for m in response.json()["messages"])


def history(stack: Stack, session: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.gateway_url}/api/web/history", params={"session": named_visitor(session)}, timeout=10
    )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def db(stack: Stack):  # type: ignore[no-untyped-def]
    return make_sessionmaker(make_engine(stack.settings)).begin()


def ticket_customer(session, reference: str) -> Customer:  # type: ignore[no-untyped-def]
    ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
    return session.get(Customer, ticket.customer_id)


def test_complaint_creates_one_ticket_with_priority_events_and_a_promise(stack: Stack) -> None:
    # Ana's 100002 has a resolved ticket about a faulty chair (KF-000001): another problem, so a
    # delivery complaint on it gets a ticket of its own.
    visitor = "e2e-complaint-ana"
    opening = say(
        stack, visitor, "I want to complain: order 100002 came late again and nobody answers my emails"
    )
    assert "sorry" in opening.lower()
    assert "e-mail address or phone number" in opening  # the order must be proven first

    after_contact = say(stack, visitor, "ana.souza@example.com")
    assert "What would put this right" in after_contact  # category and story came from the opening
    filed = say(stack, visitor, "I want a refund")
    assert "KF-" in filed and "reply here by" in filed

    with db(stack) as session:
        order = session.scalars(select(Order).where(Order.number == "100002")).one()
        complaints = select(Ticket).where(
            Ticket.order_id == order.id, Ticket.kind == "complaint", Ticket.category == "delivery_problem"
        )
        ticket = session.scalars(complaints).one()
        assert ticket.reference in filed
        assert (ticket.kind, ticket.category, ticket.desired_outcome) == (
            "complaint",
            "delivery_problem",
            "refund",
        )
        # "again" and "nobody" make it more than routine; the priority follows severity and tier.
        assert ticket.severity is Severity.MEDIUM
        assert ticket.priority in (TicketPriority.NORMAL, TicketPriority.HIGH)
        assert ticket.sla_first_response_due is not None and ticket.sla_resolution_due is not None
        assert ticket.sla_first_response_due <= ticket.sla_resolution_due
        assert ticket.source_message_id is not None
        kinds = [
            e.kind for e in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))
        ]
        assert kinds[0] == "created"

    # Whether a person joins at once follows her value (bot/crm/priority.py): the rule, not the data.
    with db(stack) as session:
        customer = ticket_customer(session, ticket.reference)
        floor = priority.high_value_floor([v for v in session.scalars(select(Customer.clv_future)) if v])
        reason = priority.complaint_goes_to_a_person(
            customer.value_tier, customer.clv_future, floor, customer.churn_risk, customer.lifecycle_stage
        )
    assert ("I'm passing you to a person" in filed) is (reason is not None)

    # She comes back another day with the same complaint: it updates the ticket rather than opening a
    # second one.
    returning = "e2e-complaint-ana-again"
    again = say(
        stack, returning, "I want to complain again about order 100002, the courier keeps letting me down"
    )
    if "e-mail address or phone number" in again:
        again = say(stack, returning, "ana.souza@example.com")
    if "What would put this right" in again:
        again = say(stack, returning, "just an explanation")
    assert ticket.reference in again and "rather than opening a second one" in again
    with db(stack) as session:
        assert len(session.scalars(complaints).all()) == 1
        kinds = [
            e.kind for e in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id))
        ]
        assert "customer_message" in kinds


def test_resolved_ticket_brings_a_survey_and_a_low_score_a_follow_up(stack: Stack) -> None:
    visitor = "e2e-complaint-mei"
    say(stack, visitor, "The rug I ordered arrived torn")
    say(stack, visitor, "It's not about an order")
    say(stack, visitor, "mei.chen@example.com")
    filed = say(stack, visitor, "a replacement please")
    assert "KF-" in filed
    reference = "KF-" + filed.split("KF-", 1)[1][:6]

    with httpx.Client(base_url=stack.gateway_url, timeout=10) as agent:
        login = agent.post(
            "/api/auth/login", json={"email": "ada@kefu.example", "password": DEMO_PASSWORD_AGENT}
        )
        assert login.status_code == 200, login.text
        agent.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        assert agent.post(f"/api/tickets/{reference}/status", json={"status": "closed"}).status_code == 409
        assert agent.post(f"/api/tickets/{reference}/status", json={"status": "open"}).status_code == 200
        resolved = agent.post(
            f"/api/tickets/{reference}/status",
            json={"status": "resolved", "resolution": "A new rug is on its way, tracking sent by e-mail."},
        )
        assert resolved.status_code == 200, resolved.text

    # The scheduler sends the survey on the customer's channel: it shows up in the chat history.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any("resolved your ticket" in m["text"] for m in history(stack, visitor)):
            break
        time.sleep(0.5)
    texts = [m["text"] for m in history(stack, visitor)]
    assert any(reference in t and "resolved your ticket" in t for t in texts), texts
    assert any("from 1 (very poor) to 5 (excellent)" in t for t in texts)

    assert "1 to 5" in say(stack, visitor, "7")  # out of range: asked again
    assert "What should we have done better" in say(stack, visitor, "two")
    closing = say(stack, visitor, "the first rug took ages to arrive")
    assert "support lead" in closing and "KF-" in closing

    with db(stack) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        assert ticket.status is TicketStatus.RESOLVED and ticket.csat_score == 2
        survey = session.scalars(select(CsatSurvey).where(CsatSurvey.ticket_id == ticket.id)).one()
        assert (
            survey.status is SurveyStatus.ANSWERED and survey.comment == "the first rug took ages to arrive"
        )
        follow_up = session.get(Ticket, survey.follow_up_ticket_id)
        assert follow_up is not None and follow_up.kind == "csat_follow_up"
        assert follow_up.parent_ticket_id == ticket.id and follow_up.reference in closing
