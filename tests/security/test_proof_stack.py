"""Proof that scales with the risk, through the real gateway, Rasa, action server and mail sink.

The attack of issue 21: the client chooses the chat id, so a guesser opens a fresh chat for every
guess and no chat ever fails twice. The failures still add up per client address (and per e-mail and
order number), and the owner is never the one locked out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Conversation, Order, OrderStatus
from tests.support.stack import Stack, running_stack, stack_settings
from tests.support.visitors import new_visitor

pytestmark = pytest.mark.rasa

ADDRESS_CAP = 6  # lower than the default 20, so the test needs fewer guesses


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("proof-stack")
    settings = stack_settings(workdir).model_copy(
        update={"verification_max_failures_per_address": ADDRESS_CAP}
    )
    with running_stack(workdir, settings=settings) as running:
        _stack[:] = [running]
        yield running


def say(stack: Stack, visitor: str, text: str) -> str:
    response = httpx.post(
        f"{stack.gateway_url}/api/web/messages", json={"session": visitor, "text": text}, timeout=60
    )
    assert response.status_code == 200, response.text
    return "\n".join(m["text"] for m in response.json()["messages"])


_stack: list[Stack] = []


def fresh() -> str:
    """A new chat: a visitor id the gateway issues, as the widget gets one."""
    return new_visitor(_stack[0].gateway_url)


def chat_of(stack: Stack, visitor: str) -> Conversation:
    with make_sessionmaker(make_engine(stack.settings))() as session:
        return session.scalars(
            select(Conversation).where(Conversation.channel == "web", Conversation.external_id == visitor)
        ).one()


def test_a_code_cancels_an_order_and_an_order_proof_alone_does_not(stack: Stack) -> None:
    visitor = fresh()
    assert "e-mail" in say(stack, visitor, "please cancel order 100003")
    asked = say(stack, visitor, "ana.souza@example.com")
    assert "e-mailed a 6-digit code to a•••@example.com" in asked and "Shall I cancel" not in asked
    assert chat_of(stack, visitor).proof == "order"
    # The code is in the mail the sink kept; a wrong one first.
    assert "isn't right" in say(stack, visitor, "000000" if stack.latest_code() != "000000" else "111111")
    assert "Shall I cancel it?" in say(stack, visitor, stack.latest_code("ana.souza@example.com"))
    assert chat_of(stack, visitor).proof == "code"
    assert "stays as it is" in say(stack, visitor, "no, keep it")
    with make_sessionmaker(make_engine(stack.settings))() as session:
        status = session.scalars(select(Order.status).where(Order.number == "100003")).one()
    assert status is OrderStatus.PROCESSING


def test_one_guess_per_fresh_chat_still_pauses_the_guessers_address(stack: Stack) -> None:
    # One wrong e-mail per order number, each from a new chat: no chat ever fails twice.
    for index in range(ADDRESS_CAP):
        visitor = fresh()
        assert "e-mail" in say(stack, visitor, f"where is order {101100 + index}")
        answer = say(stack, visitor, f"guess{index}@evil.example")
        if index < ADDRESS_CAP - 1:
            assert "couldn't find an order matching" in answer
        else:  # the guess that reaches the address's limit says so
            assert "paused order look-ups" in answer
    # The next fresh chat from the same address is paused before its guess is even checked, even a right one.
    visitor = fresh()
    say(stack, visitor, "where is order 100008")
    paused = say(stack, visitor, "mei.chen@example.com")
    assert "paused order look-ups" in paused and "delivered" not in paused
