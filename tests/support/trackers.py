"""Rasa SDK trackers for action tests, built from a dict as the action server receives them."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker


def make_tracker(
    sender: str,
    text: str = "",
    intent: str | None = None,
    slots: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
    active_loop: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Tracker:
    """A tracker of `sender` whose latest message is `text`, classified as `intent` (none by default)."""
    return Tracker.from_dict(
        {
            "sender_id": sender,
            "slots": dict(slots or {}),
            "latest_message": {
                "text": text,
                "intent": {"name": intent} if intent is not None else {},
                "entities": list(entities or []),
                "metadata": dict(metadata or {}),
            },
            "events": list(events or []),
            "paused": False,
            "followup_action": None,
            "active_loop": dict(active_loop or {}),
            "latest_action_name": None,
        }
    )
