"""The conversation files load, follow the format and are enough: at least 60 conversations, each of at
least two turns, most with three or more customer turns. Needs no stack."""

from __future__ import annotations

from tests.support.conversations import customer_turns, load_conversations


def test_the_conversation_files_load_and_are_enough() -> None:
    conversations = load_conversations()
    assert len(conversations) >= 60, len(conversations)
    assert all(len(c["turns"]) >= 2 for c in conversations)
    long_ones = [c for c in conversations if customer_turns(c) >= 3]
    assert len(long_ones) * 2 > len(conversations), f"only {len(long_ones)} have 3+ customer turns"
    areas = {c["area"] for c in conversations}
    assert {"complaints", "orders", "tickets", "dead_ends", "knowledge", "handover", "survey"} <= areas
