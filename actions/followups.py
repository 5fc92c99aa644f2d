"""What a customer says beyond the request in hand: a second request in the same message, and
follow-ups ("and now?", "what about it?") that only make sense with the order being discussed."""

from __future__ import annotations

import re

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

# Where a message turns to a second request: "... and also ...", "... . Also, ...", "...? and how ...".
_SECOND = re.compile(
    r"(?:[?.!;]\s*(?:and\s+)?(?:also\s+)?|,?\s+and\s+also\s+|,?\s+also\s*,?\s+|\s+and\s+(?=(?:how|what|when|"
    r"where|why|can|could|do|does|is|are|will|i'?d|i want|i need)\b)|\s+plus\s+)",
    re.IGNORECASE,
)
# A follow-up that points back at what was just discussed.
_REFERS_BACK = re.compile(
    r"\b(?:it|its|it's|that|this|them|the (?:order|parcel|package|delivery)|now|still|so what'?s|any news|"
    r"what'?s happening|update)\b",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\w+")
# A follow-up about where an order is ("what's happening with it now?", "any news?").
_STATUS = re.compile(
    r"\b(?:happening|where|status|update|news|arriv\w*|deliver\w*|come|coming|ship\w*|now)\b",
    re.IGNORECASE,
)


def asks_status(text: str) -> bool:
    """Whether a follow-up asks where the order being discussed is."""
    return refers_back(text) and _STATUS.search(text or "") is not None


def split_requests(text: str) -> tuple[str, str | None]:
    """The first request of a message and the rest, when the rest is a request of its own (3+ words)."""
    for match in _SECOND.finditer(text or ""):
        first, rest = text[: match.start()].strip(), text[match.end() :].strip(" ?.!,;")
        if len(_WORDS.findall(first)) >= 2 and len(_WORDS.findall(rest)) >= 3:
            return first, rest
    return text, None


def refers_back(text: str) -> bool:
    """Whether a short message points back at the order being discussed ("so what's up with it now?")."""
    return len(_WORDS.findall(text or "")) <= 12 and bool(_REFERS_BACK.search(text or ""))


def remember_second_request(tracker: Tracker) -> list[EventType]:
    """Keep the second request of the latest message for when the first is done."""
    _first, rest = split_requests(str(tracker.latest_message.get("text") or ""))
    return [SlotSet("pending_request", rest)]


_OFFERED = re.compile(r"^You also asked: \u201c(.+)\u201d\. Shall we look at that now\?$", re.DOTALL)
_CONTENT = re.compile(r"[^\W\d_]{4,}")  # words that carry the topic ("return", not "and", "the")


def offered_request(previous_reply: str | None) -> str | None:
    """The second request our previous reply offered to look at, if it was that offer."""
    found = _OFFERED.match(previous_reply or "")
    return found.group(1) if found else None


def taken_up(text: str, offered: str) -> bool:
    """Whether a short follow-up ("and the return?") is about the request we offered to look at."""
    if len(_WORDS.findall(text or "")) > 8:
        return False
    mine = {word.lower()[:5] for word in _CONTENT.findall(text or "")}
    return bool(mine & {word.lower()[:5] for word in _CONTENT.findall(offered)})


def offer_second_request(dispatcher: CollectingDispatcher, rest: str | None) -> list[EventType]:
    """Ask about the second request of the message just answered, once; its button sends it as typed."""
    if not rest:
        return []
    dispatcher.utter_message(
        text=f"You also asked: \u201c{rest}\u201d. Shall we look at that now?",
        buttons=[
            {"title": "Yes, go on", "payload": rest[:200]},
            {"title": "No, thanks", "payload": "/thank"},
        ],
    )
    return [SlotSet("pending_request", None)]
