"""The gateway's HTTP client for Rasa (REST channel, HTTP API) and the action server's health check."""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.errors import ServiceUnavailable
from bot.settings import Settings

logger = logging.getLogger(__name__)

# Health checks must answer quickly even when the normal reply timeout is long.
HEALTH_TIMEOUT_SECONDS = 2.0
# The slots of a question in progress (the forms, a pending confirmation, a survey), cleared when
# Rasa resumes after a person had the chat. What the chat is about (last_order, last_ticket) stays.
DIALOGUE_SLOTS = (
    "requested_slot",
    "order_number",
    "contact",
    "order_purpose",
    "pending_cancel",
    "complaint_category",
    "complaint_details",
    "complaint_outcome",
    "complaint_opening",
    "complaint_cancelled",
    "form_misfits",
    "one_time_code",
    "code_for",
    "pending_request",
    "ticket_reference",
    "csat_survey_id",
    "csat_score",
    "csat_comment",
    "csat_contact",
    "csat_skipped",
    "csat_attempts",
    "kb_state",
)


class RasaUnavailable(ServiceUnavailable):
    """Rasa could not be reached, timed out, or failed while answering."""


@dataclass
class BotReply:
    """One message from the bot, normalised from Rasa's REST channel output."""

    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """What is stored in `Message.payload` for this reply."""
        return {"buttons": self.buttons, "metadata": self.metadata}


def _buttons(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        return []
    buttons = []
    for button in raw:
        if isinstance(button, dict) and button.get("title"):
            title = str(button["title"])
            buttons.append({"title": title, "payload": str(button.get("payload") or title)})
    return buttons


def _custom_metadata(custom: dict[str, Any]) -> dict[str, Any]:
    """A custom JSON message flattened: its `metadata` dict plus any other keys."""
    flat = {key: value for key, value in custom.items() if key != "metadata"}
    inner = custom.get("metadata")
    if isinstance(inner, dict):
        flat.update(inner)
    return flat


def normalise_replies(raw_messages: list[Any]) -> list[BotReply]:
    """Turn Rasa's output messages into replies.

    Rasa's output channel sends `utter_message(text=..., json_message={"metadata": ...})` as two
    messages, the text and then the custom JSON; such a custom message (no text of its own) is
    folded into the reply before it.
    """
    replies: list[BotReply] = []
    for raw in raw_messages:
        if not isinstance(raw, dict):
            continue
        text = raw.get("text")
        text = text if isinstance(text, str) else ""
        buttons = _buttons(raw.get("buttons"))
        raw_custom = raw.get("custom")
        custom: dict[str, Any] = raw_custom if isinstance(raw_custom, dict) else {}
        metadata = _custom_metadata(custom)
        for key in ("image", "attachment"):
            if raw.get(key):
                metadata[key] = raw[key]
        if not text and not buttons and "metadata" in custom and replies:
            replies[-1].metadata.update(metadata)
            continue
        if not text and not buttons and not metadata:
            continue
        replies.append(BotReply(text=text, buttons=buttons, metadata=metadata))
    return replies


class RasaClient:
    """Talks to Rasa over loopback; one per app, closed when the app shuts down."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.rasa_urls = settings.rasa_urls
        self.action_server_urls = settings.action_server_urls
        self._token = settings.rasa_token
        self._http = httpx.AsyncClient(timeout=settings.rasa_timeout_seconds, transport=transport)

    @property
    def rasa_url(self) -> str:
        """The first Rasa replica (the only one unless RASA_URL lists several)."""
        return self.rasa_urls[0]

    def replicas_for(self, sender_id: str) -> list[str]:
        """The Rasa replicas in the order a conversation tries them: its own first (a hash of the
        sender id, so one conversation keeps to one replica), then the others in turn."""
        first = zlib.crc32(sender_id.encode()) % len(self.rasa_urls)
        return self.rasa_urls[first:] + self.rasa_urls[:first]

    async def _post(self, sender_id: str, path: str, **kwargs: Any) -> tuple[str, httpx.Response]:
        """POST to the conversation's replica; another replica only when that one refuses the
        connection (the request never arrived, so nothing is done twice). Trackers and locks are
        shared (SQL tracker store, Redis lock store), so any replica can carry the conversation on."""
        replicas = self.replicas_for(sender_id)
        for number, base in enumerate(replicas, start=1):
            try:
                return base, await self._http.post(f"{base}{path}", **kwargs)
            except httpx.ConnectError:
                if number == len(replicas):
                    raise
                logger.warning("Rasa at %s refuses connections; trying %s", base, replicas[number])
        raise AssertionError("unreachable: there is always one replica")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> list[BotReply]:
        """Send a customer's message to Rasa's REST channel (guarded by the token, like the rest of
        Rasa: bot/launch/rasa_server.py) and return the bot's replies."""
        where = self.replicas_for(sender_id)[0]
        try:
            where, response = await self._post(
                sender_id,
                "/webhooks/rest/webhook",
                params={"token": self._token},
                json={"sender": sender_id, "message": text, "metadata": metadata},
            )
        except httpx.TimeoutException as exc:
            raise RasaUnavailable(f"Rasa at {where} did not answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise RasaUnavailable(
                f"cannot reach Rasa at {where} ({type(exc).__name__}: {exc}); is `rasa run` up?"
            ) from exc
        if response.status_code != 200:
            raise RasaUnavailable(
                f"Rasa answered HTTP {response.status_code} to the REST webhook: {response.text[:300]}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise RasaUnavailable(f"Rasa answered something that is not JSON: {response.text[:300]}") from exc
        if not isinstance(body, list):
            raise RasaUnavailable(
                f"Rasa answered {type(body).__name__} where a list of messages was expected"
            )
        return normalise_replies(body)

    async def trigger_intent(
        self, sender_id: str, intent: str, entities: dict[str, Any] | None = None
    ) -> list[BotReply]:
        """Inject an intent the customer did not type (a survey after a resolved ticket) and return
        what the bot said in response."""
        try:
            _where, response = await self._post(
                sender_id,
                f"/conversations/{sender_id}/trigger_intent",
                params={"token": self._token},
                json={"name": intent, "entities": entities or {}},
            )
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"cannot reach Rasa ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise RasaUnavailable(
                f"Rasa refused the intent {intent}: HTTP {response.status_code} {response.text[:300]}"
            )
        try:
            messages = response.json().get("messages") or []
        except (ValueError, AttributeError) as exc:
            raise RasaUnavailable(f"Rasa answered something unexpected: {response.text[:300]}") from exc
        return normalise_replies(messages)

    async def resume(self, sender_id: str) -> None:
        """Un-pause Rasa's tracker for a conversation (paused when it was handed to a person).

        A person had the chat meanwhile, so whatever the bot was asking before is over: the form in
        progress is stopped and its answers forgotten (the history stays, for agents and for Rasa).
        A paused tracker ends on the hand-over action, not on `action_listen`; Rasa's rules only
        match a message that follows a listen, so one is recorded last.
        """
        await self._append_event(
            sender_id,
            "resume",
            {"event": "active_loop", "name": None},
            *({"event": "slot", "name": slot, "value": None} for slot in DIALOGUE_SLOTS),
            {"event": "action", "name": "action_listen"},
        )

    async def pause(self, sender_id: str) -> None:
        """Pause Rasa's tracker: a person answers this conversation now."""
        await self._append_event(sender_id, "pause")

    async def _append_event(self, sender_id: str, event: str, *more: dict[str, Any]) -> None:
        try:
            _where, response = await self._post(
                sender_id,
                f"/conversations/{sender_id}/tracker/events",
                params={"token": self._token},
                json=[{"event": event}, *more],
            )
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"cannot reach Rasa ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise RasaUnavailable(
                f"Rasa refused to {event} the conversation: HTTP {response.status_code} {response.text[:300]}"
            )

    async def status(self) -> dict[str, Any]:
        """Whether every Rasa replica is up with a model: `{"ok", "model_loaded", "detail"}`, plus
        `replicas` (each one's own status) when there are several."""
        states = await asyncio.gather(*(self.replica_status(url) for url in self.rasa_urls))
        if len(states) == 1:
            return states[0]
        down = [
            f"{url}: {state['detail']}"
            for url, state in zip(self.rasa_urls, states, strict=True)
            if not state["ok"]
        ]
        return {
            "ok": not down,
            "model_loaded": all(state["model_loaded"] for state in states),
            "detail": "; ".join(down) if down else f"{len(states)} replicas with a model",
            "replicas": [{"url": url, **state} for url, state in zip(self.rasa_urls, states, strict=True)],
        }

    async def replica_status(self, base: str, timeout: float = HEALTH_TIMEOUT_SECONDS) -> dict[str, Any]:
        try:
            response = await self._http.get(f"{base}/status", params={"token": self._token}, timeout=timeout)
        except httpx.HTTPError as exc:
            return {
                "ok": False,
                "model_loaded": False,
                "detail": f"cannot reach Rasa at {base} ({type(exc).__name__}); is `rasa run` up?",
            }
        if response.status_code == 200:
            try:
                model_file = response.json().get("model_file")
            except (ValueError, AttributeError):
                model_file = None
            if model_file:
                return {"ok": True, "model_loaded": True, "detail": f"model {model_file}"}
            return {"ok": False, "model_loaded": False, "detail": "Rasa is up but reports no model file"}
        if response.status_code == 409:
            return {
                "ok": False,
                "model_loaded": False,
                "detail": "Rasa is up but has no model loaded; train one with `rasa train`",
            }
        if response.status_code in (401, 403):
            return {
                "ok": False,
                "model_loaded": False,
                "detail": "Rasa refused the token: the gateway and Rasa must run with the same RASA_TOKEN",
            }
        return {
            "ok": False,
            "model_loaded": False,
            "detail": f"Rasa /status answered HTTP {response.status_code}",
        }

    async def action_server_ok(self) -> bool:
        """Whether every action server answers its health check."""
        return all(
            await asyncio.gather(*(self.action_server_answers(url) for url in self.action_server_urls))
        )

    async def action_server_answers(self, base: str, timeout: float = HEALTH_TIMEOUT_SECONDS) -> bool:
        try:
            response = await self._http.get(f"{base}/health", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
