"""Scripted multi-turn conversations (tests/conversations/*.yml) played through the real gateway.

A conversation is data: `name`, optional `note`, `turns` and optional `crm` checks at the end. A turn
is one of

    {say: "text", expect: [regex], forbid: [regex], buttons: [regex], mode: bot|pending_agent|agent}
    {press: regex, ...}   send the payload of the newest button (in any earlier bot message) whose
                          title matches, as the widget does when it is clicked; same checks as `say`
    {agent: claim|reply|handback|close, text: "...", expect/forbid}   the demo agent acts in the console;
                          expect/forbid apply to what the bot says on hand-back
    {wait: seconds, expect/forbid}   wait, then check every bot line that arrived in the chat meanwhile

Every reply is also checked against ALWAYS_FORBIDDEN: the notice the gateway sends when Rasa or the
action server failed, which would otherwise let a `forbid`-only turn pass on a broken bot.

A text may name a demo ticket that this run's seed resolved in the last few days, so that it can be
reopened: `{reopenable.reference}` and `{reopenable.email}` (its customer's e-mail). Each
conversation that uses them gets its own ticket, of a customer no conversation file mentions.

A `say` text may contain `{code}`: the one-time code in the newest mail the stack's mail sink kept.

`crm: {mode: ..., proof: order|code|None, tickets: [{kind, category, severity, priority, contact,
desired_outcome, status, order, description_contains, count}]}` checks the CRM conversation of this
session (how it proved whose it is) and the tickets linked to it (Ticket.conversation_id), so
conversations stay independent of each other. A value may be a list (any of), or "!value" (anything
but); without `count` at least one ticket must match.

Every regex is searched case-insensitively in the bot's reply lines joined with newlines. A failure
shows the whole transcript so far and what was expected.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Conversation, CsatSurvey, Customer, Order, Ticket, TicketStatus
from bot.demo.seed import DEMO_PASSWORD_AGENT
from tests.support.stack import Stack, console
from tests.support.visitors import named_visitor

CONVERSATIONS_DIR = Path(__file__).resolve().parent.parent / "conversations"
TURN_KEYS = {"say", "press", "agent", "wait"}
CHECK_KEYS = {"expect", "forbid", "buttons", "mode", "text"}
TICKET_FIELDS = {
    "kind", "category", "severity", "priority", "contact", "desired_outcome", "status", "order",
    "description_contains", "count",
}  # fmt: skip
AGENT_EMAIL = "ada@kefu.example"
ALWAYS_FORBIDDEN = [r"can't answer right now"]


class ConversationError(ValueError):
    """A conversation file that does not follow the format above."""


def load_conversations(directory: Path = CONVERSATIONS_DIR) -> list[dict[str, Any]]:
    """Every conversation of every YAML file, each with `area` (the file's stem); names are unique."""
    found: list[dict[str, Any]] = []
    names: set[str] = set()
    for path in sorted(directory.glob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConversationError(f"{path.name} is not valid YAML: {error}") from None
        if not isinstance(data, list):
            raise ConversationError(f"{path.name}: expected a list of conversations")
        for conversation in data:
            check_conversation(conversation, path.name)
            if conversation["name"] in names:
                raise ConversationError(
                    f"{path.name}: conversation name {conversation['name']!r} is used twice"
                )
            names.add(conversation["name"])
            found.append({**conversation, "area": path.stem})
    return found


def check_conversation(conversation: Any, where: str) -> None:
    if not isinstance(conversation, dict) or not isinstance(conversation.get("name"), str):
        raise ConversationError(f"{where}: each conversation needs a name: {conversation!r}")
    name = f"{where}:{conversation['name']}"
    unknown = set(conversation) - {"name", "note", "turns", "crm"}
    if unknown:
        raise ConversationError(f"{name}: unknown keys {sorted(unknown)}")
    turns = conversation.get("turns")
    if not isinstance(turns, list) or len(turns) < 2:
        raise ConversationError(f"{name}: needs at least 2 turns")
    for number, turn in enumerate(turns, 1):
        if not isinstance(turn, dict) or len(TURN_KEYS & set(turn)) != 1:
            raise ConversationError(
                f"{name} turn {number}: needs exactly one of {sorted(TURN_KEYS)}: {turn!r}"
            )
        if "say" in turn and not isinstance(turn["say"], (str, int)) or isinstance(turn.get("say"), bool):
            raise ConversationError(
                f"{name} turn {number}: quote what is said ({turn['say']!r}): YAML reads yes/no as booleans"
            )
        unknown = set(turn) - TURN_KEYS - CHECK_KEYS
        if unknown:
            raise ConversationError(f"{name} turn {number}: unknown keys {sorted(unknown)}")
        for key in ("expect", "forbid", "buttons"):
            for pattern in turn.get(key, []) or []:
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as error:
                    raise ConversationError(f"{name} turn {number}: bad regex {pattern!r}: {error}") from None
        if "agent" in turn and turn["agent"] not in ("claim", "reply", "handback", "close"):
            raise ConversationError(f"{name} turn {number}: unknown agent action {turn['agent']!r}")
    crm = conversation.get("crm") or {}
    unknown = set(crm) - {"tickets", "mode", "proof", "surveys"}
    if unknown:
        raise ConversationError(f"{name}: unknown crm keys {sorted(unknown)}")
    for ticket in crm.get("tickets", []) or []:
        if set(ticket) - TICKET_FIELDS:
            raise ConversationError(f"{name}: unknown ticket fields {sorted(set(ticket) - TICKET_FIELDS)}")


def customer_turns(conversation: dict[str, Any]) -> int:
    return sum(1 for turn in conversation["turns"] if "say" in turn or "press" in turn)


@dataclass
class Chat:
    """One customer's chat with a fresh session id, keeping the transcript for failure messages."""

    stack: Stack
    session: str
    transcript: list[str] = field(default_factory=list)
    bot_messages: list[dict[str, Any]] = field(default_factory=list)
    conversation_id: int | None = None
    mode: str = "bot"
    seen_ids: set[int] = field(default_factory=set)

    def send(self, text: str) -> list[dict[str, Any]]:
        self.transcript.append(f"customer: {text}")
        for attempt in range(3):
            response = httpx.post(
                f"{self.stack.gateway_url}/api/web/messages",
                json={"session": self.session, "text": text},
                timeout=90,
            )
            if response.status_code != 429:
                break
            time.sleep(float(response.json().get("retry_after", 5)) + attempt)
        if response.status_code != 200:
            raise AssertionError(
                self.failure(f"POST /api/web/messages answered {response.status_code}: {response.text}")
            )
        body = response.json()
        self.conversation_id = body.get("conversation_id") or self.conversation_id
        if body.get("message_id") is not None:
            self.seen_ids.add(body["message_id"])
        self.mode = body.get("mode", self.mode)
        return self._record(body["messages"])

    def _record(self, messages: list[dict[str, Any]], who: str = "bot") -> list[dict[str, Any]]:
        fresh = [m for m in messages if m.get("id") not in self.seen_ids or m.get("id") is None]
        for message in fresh:
            if message.get("id") is not None:
                self.seen_ids.add(message["id"])
            author = message.get("author", who)
            buttons = [b.get("title", "") for b in message.get("buttons") or []]
            line = f"{author}: {message.get('text', '')}"
            if buttons:
                line += "  [" + " | ".join(buttons) + "]"
            self.transcript.append(line)
            if author in ("bot", "system"):
                self.bot_messages.append(message)
        return fresh

    def new_from_history(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.stack.gateway_url}/api/web/history", params={"session": self.session}, timeout=30
        )
        assert response.status_code == 200, response.text
        body = response.json()
        self.mode = body.get("mode", self.mode)
        return self._record(body["messages"])

    def button_payload(self, title: str) -> str:
        pattern = re.compile(title, re.IGNORECASE)
        for message in reversed(self.bot_messages):
            for button in message.get("buttons") or []:
                if pattern.search(button.get("title", "")):
                    return str(button.get("payload") or button.get("title"))
        raise AssertionError(self.failure(f"no button titled /{title}/ has been offered"))

    def failure(self, problem: str) -> str:
        return (
            f"{problem}\n\n--- transcript of session {self.session} "
            f"(conversation {self.conversation_id}, mode {self.mode}) ---\n"
            + "\n".join(self.transcript)
            + f"\n\n--- what Rasa made of it ---\n{self.rasa_reading()}"
        )

    def rasa_reading(self) -> str:
        """Each customer turn's intent, confidence and entities and the actions Rasa ran, so a failure
        says whether understanding or the actions went wrong."""
        try:
            with make_sessionmaker(make_engine(self.stack.settings))() as db:
                chat = select(Conversation.sender_id).where(Conversation.id == self.conversation_id)
                sender = db.scalar(chat)
            tracker = httpx.get(
                f"{self.stack.settings.rasa_urls[0].rstrip('/')}/conversations/{sender}/tracker",
                params={"token": self.stack.settings.rasa_token},
                timeout=30,
            ).json()
        except (httpx.HTTPError, ValueError, SQLAlchemyError) as exc:
            return f"(could not read Rasa's tracker: {exc!r})"
        lines = []
        for event in tracker.get("events") or []:
            if event.get("event") == "user":
                parse = event.get("parse_data") or {}
                intent = parse.get("intent") or {}
                entities = [f"{e.get('entity')}={e.get('value')}" for e in parse.get("entities") or []]
                lines.append(
                    f"user {event.get('text')!r}: {intent.get('name')} {intent.get('confidence', 0):.2f}"
                    + (f" {entities}" if entities else "")
                )
            elif event.get("event") == "action" and event.get("name") not in ("action_listen", None):
                lines.append(f"  action {event['name']}")
        return "\n".join(lines) or "(no events)"


def check_reply(chat: Chat, turn: dict[str, Any], number: int, messages: list[dict[str, Any]]) -> None:
    messages = [m for m in messages if m.get("author", "bot") not in ("customer", "agent")]
    text = "\n".join(m.get("text", "") for m in messages)
    titles = [b.get("title", "") for m in messages for b in m.get("buttons") or []]
    problems = []
    for pattern in turn.get("expect", []) or []:
        if not re.search(pattern, text, re.IGNORECASE | re.DOTALL):
            problems.append(f"expected /{pattern}/")
    for pattern in [*(turn.get("forbid", []) or []), *ALWAYS_FORBIDDEN]:
        if found := re.search(pattern, text, re.IGNORECASE | re.DOTALL):
            problems.append(f"forbidden /{pattern}/ matched {found.group(0)!r}")
    for pattern in turn.get("buttons", []) or []:
        if not any(re.search(pattern, title, re.IGNORECASE) for title in titles):
            problems.append(f"expected a button /{pattern}/ among {titles}")
    if "mode" in turn and chat.mode != turn["mode"]:
        problems.append(f"expected mode {turn['mode']!r}, the chat is {chat.mode!r}")
    if problems:
        what = turn.get("say") or turn.get("press") or turn.get("agent") or f"wait {turn.get('wait')}"
        raise AssertionError(
            chat.failure(
                f"turn {number} ({what!r}): "
                + "; ".join(problems)
                + f"\nthe reply was:\n{text or '(nothing)'}"
            )
        )


def agent_action(chat: Chat, turn: dict[str, Any]) -> list[dict[str, Any]]:
    action, conversation_id = turn["agent"], chat.conversation_id
    if conversation_id is None:
        raise AssertionError(chat.failure("the agent cannot act: no conversation yet"))
    chat.transcript.append(f"(agent {AGENT_EMAIL}: {action}{' ' + turn['text'] if 'text' in turn else ''})")
    with console(chat.stack, AGENT_EMAIL, DEMO_PASSWORD_AGENT) as agent:
        base = f"/api/console/conversations/{conversation_id}"
        if action == "reply":
            response = agent.post(f"{base}/messages", json={"text": turn["text"]})
        else:
            response = agent.post(f"{base}/{action}")
        if response.status_code != 200:
            raise AssertionError(
                chat.failure(f"console {action} answered {response.status_code}: {response.text}")
            )
        body = response.json()
    if action == "reply":
        chat.new_from_history()  # the agent's own line, for the transcript
        return []
    said = [{"author": "bot", **m} for m in body.get("bot_messages", []) or []]
    return chat._record(said) + chat.new_from_history()


PLACEHOLDER = re.compile(r"\{reopenable\.(reference|email)\}")
_handed_out: set[str] = set()  # references of reopenable tickets already given to a conversation


def reopenable_ticket(stack: Stack) -> dict[str, str]:
    """A resolved demo ticket well inside the reopening window whose customer no conversation uses."""
    mentioned = " ".join(path.read_text(encoding="utf-8") for path in CONVERSATIONS_DIR.glob("*.yml"))
    since = datetime.now(UTC) - timedelta(days=max(stack.settings.ticket_reopen_days - 2, 1))
    with make_sessionmaker(make_engine(stack.settings))() as db:
        rows = db.execute(
            select(Ticket.reference, Customer.email, Ticket.resolved_at)
            .join(Customer, Customer.id == Ticket.customer_id)
            .where(Ticket.status == TicketStatus.RESOLVED, Ticket.resolved_at.is_not(None))
            .order_by(Ticket.resolved_at.desc())
        ).all()
    for reference, email, resolved_at in rows:
        resolved_at = resolved_at if resolved_at.tzinfo else resolved_at.replace(tzinfo=UTC)
        if resolved_at < since:
            break
        if reference not in _handed_out and reference not in mentioned and email not in mentioned:
            _handed_out.add(reference)
            return {"reference": reference, "email": email}
    raise AssertionError("the demo data has no resolved ticket left to reopen")


def fill_placeholders(stack: Stack, conversation: dict[str, Any]) -> dict[str, Any]:
    """The conversation with {reopenable.*} replaced by one real ticket's reference and e-mail."""
    if not PLACEHOLDER.search(yaml.safe_dump(conversation)):
        return conversation
    ticket = reopenable_ticket(stack)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda m: ticket[m.group(1)], value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return fill(conversation)


def play(stack: Stack, conversation: dict[str, Any], session: str) -> Chat:
    chat = Chat(stack, named_visitor(session))
    conversation = fill_placeholders(stack, conversation)
    for number, turn in enumerate(conversation["turns"], 1):
        if "say" in turn:
            said = str(turn["say"])
            if "{code}" in said:  # the one-time code the bot has just e-mailed
                said = said.replace("{code}", stack.latest_code())
                chat.transcript.append(f"(reads the code in the mail sink: {said})")
            messages = chat.send(said)
        elif "press" in turn:
            payload = chat.button_payload(turn["press"])
            chat.transcript.append(f"(presses /{turn['press']}/ -> {payload})")
            messages = chat.send(payload)
        elif "agent" in turn:
            messages = agent_action(chat, turn)
        else:
            time.sleep(float(turn["wait"]))
            messages = chat.new_from_history()
        check_reply(chat, turn, number, messages)
    check_crm(chat, conversation.get("crm") or {})
    return chat


def check_crm(chat: Chat, crm: dict[str, Any]) -> None:
    if not crm:
        return
    with make_sessionmaker(make_engine(chat.stack.settings))() as db:
        conversation = db.scalars(
            select(Conversation).where(
                Conversation.channel == "web", Conversation.external_id == chat.session
            )
        ).one_or_none()
        if conversation is None:
            raise AssertionError(chat.failure("no CRM conversation for this session"))
        problems = []
        if "mode" in crm and conversation.mode.value != crm["mode"]:
            problems.append(f"conversation mode is {conversation.mode.value!r}, expected {crm['mode']!r}")
        if "proof" in crm and str(conversation.proof) != str(crm["proof"]):
            problems.append(f"the chat's proof is {conversation.proof!r}, expected {crm['proof']!r}")
        if "surveys" in crm:
            surveys = db.scalars(
                select(CsatSurvey).where(CsatSurvey.conversation_id == conversation.id)
            ).all()
            if len(surveys) != crm["surveys"]:
                problems.append(f"{len(surveys)} survey rows in this conversation, expected {crm['surveys']}")
        mine = db.scalars(
            select(Ticket).where(Ticket.conversation_id == conversation.id).order_by(Ticket.id)
        ).all()
        described = [describe(db, t) for t in mine]
        for wanted in crm.get("tickets", []) or []:
            matching = [t for t in described if ticket_matches(t, wanted)]
            count = wanted.get("count")
            if count is None and not matching:
                problems.append(f"no ticket of this conversation is {wanted}")
            elif count is not None and len(matching) != count:
                problems.append(
                    f"{len(matching)} tickets of this conversation are {wanted}, expected {count}"
                )
        if problems:
            listing = "\n".join(f"  {t}" for t in described) or "  (none)"
            raise AssertionError(
                chat.failure("CRM: " + "; ".join(problems) + f"\ntickets of this conversation:\n{listing}")
            )


def describe(db: Any, ticket: Ticket) -> dict[str, Any]:
    order = db.get(Order, ticket.order_id) if ticket.order_id else None
    return {
        "reference": ticket.reference,
        "kind": ticket.kind,
        "category": ticket.category,
        "severity": ticket.severity.value,
        "priority": ticket.priority.value,
        "status": ticket.status.value,
        "contact": ticket.contact,
        "desired_outcome": ticket.desired_outcome,
        "order": order.number if order else None,
        "description": ticket.description,
    }


def ticket_matches(ticket: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if key == "count":
            continue
        if key == "description_contains":
            needles = value if isinstance(value, list) else [value]
            if not all(n.lower() in (ticket["description"] or "").lower() for n in needles):
                return False
        elif isinstance(value, list):
            if ticket[key] not in value:
                return False
        elif isinstance(value, str) and value.startswith("!"):
            if str(ticket[key]) == value[1:]:
                return False
        elif str(ticket[key]) != str(value):
            return False
    return True
