"""Web chat keys: the gateway issues visitor ids, refuses ids it did not issue, and never logs them."""

from __future__ import annotations

import io
import logging

import httpx
import pytest

from bot import logsafe
from bot.channels.widget import is_issued_visitor_id
from bot.settings import Settings
from tests.support.visitors import visitor_id


async def test_a_new_visitor_gets_a_long_random_id_from_the_gateway(
    client: httpx.AsyncClient, web_settings: Settings
) -> None:
    first = await client.post("/api/web/visitors")
    second = await client.post("/api/web/visitors")

    assert first.status_code == second.status_code == 201
    ids = [first.json()["session"], second.json()["session"]]
    assert ids[0] != ids[1]
    assert all(len(i) == 40 and is_issued_visitor_id(web_settings.secret_key, i) for i in ids)
    # The id works for sending and reading.
    sent = await client.post("/api/web/messages", json={"session": ids[0], "text": "hello"})
    read = await client.post("/api/web/history", json={"session": ids[0]})
    assert sent.status_code == 200 and read.status_code == 200
    assert [m["text"] for m in read.json()["messages"]][0] == "hello"


@pytest.mark.parametrize("chosen", ["Qz", "history-3", "visitor-1", "0" * 32, "A" * 40])
async def test_an_id_the_visitor_chose_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, chosen: str
) -> None:
    sent = await client.post("/api/web/messages", json={"session": chosen, "text": "where is 100001?"})
    read = await client.get("/api/web/history", params={"session": chosen})
    posted = await client.post("/api/web/history", json={"session": chosen})

    for response in (sent, read, posted):
        assert response.status_code == 401
        assert "POST /api/web/visitors" in response.json()["error"]


async def test_an_id_issued_under_another_secret_key_is_refused(client: httpx.AsyncClient) -> None:
    foreign = visitor_id("another-gateways-secret-key")
    response = await client.post("/api/web/messages", json={"session": foreign, "text": "hi"})
    assert response.status_code == 401


def test_visitor_ids_in_urls_and_subprotocols_are_redacted_from_log_lines(web_settings: Settings) -> None:
    visitor = visitor_id()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("uvicorn.error.test-chat-keys")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logsafe.install(web_settings)
    try:
        logger.info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:5555", f"/api/web/live?session={visitor}&after=3"
        )
        logger.info("offered %s", f"kefu.live, kefu.visitor.{visitor}")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert visitor not in written
    assert "session=[redacted]&after=3" in written and "kefu.visitor.[redacted]" in written
