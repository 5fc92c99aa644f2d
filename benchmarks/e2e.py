"""What a customer gets as the first reply, end to end: each message is the first of a new chat,
sent through the gateway (`POST /api/web/messages`) to the real Rasa, action server and database,
and the reply is judged against what would serve that message.

The first reply is classified as

    article:<slug>     an article answered it (the message metadata names the article)
    choice             articles offered to choose from (their slugs, from the buttons)
    flow:<name>        a flow started: track_order, cancel_order, refund, complaint, check_ticket,
                       reopen_ticket, list_orders (read from Rasa's tracker: the active form and
                       the action that ran)
    handover           the chat went to the queue for a person
    survey             the rating survey started
    no_answer          "I don't have an answer" (the knowledge base had nothing)
    out_of_scope       "That's outside what I can help with"
    other:<action>     anything else (a greeting, thanks...)

and judged against the outcomes a mapping file accepts for the message's source label:

    right            the outcome is an accepted one
    right_in_choice  a choice that includes an accepted article
    choice_without   a choice without one
    wrong            another article or flow
    no_answer        no_answer or out_of_scope, when neither is accepted

Sets: Bitext's customer-service CSV in ../shared/datasets (labels mapped by
benchmarks/data/e2e_bitext_map.yml), our KB questions (each accepts its article), our unanswerable
questions (accept no_answer) and our out-of-scope messages (accept out_of_scope). Wherever an
article is accepted, so are the flows that serve the same need (benchmarks/data/e2e_article_flows.yml:
"how do I cancel my order?" may start the cancellation). Every message is
put in one of two halves by a hash of its text: choose thresholds on `--half tune`, report on
`--half report` (the default). Bitext is sampled per label (`--per-label`, the same sample every run).

By default a private stack (temporary SQLite database, the trained model) is started and stopped;
`--gateway URL` measures a running one instead (`make run`'s: settings come from the environment
and .env, as for the processes; it then gains a conversation per message).

Printed and saved (benchmarks/results/e2e.json): the table per set, per source label, the most
frequent confusions, and the latency of the first reply. `make bench-e2e`; by hand:
`.venv/bin/python -m benchmarks.e2e --sets kb,unanswerable --half both`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from benchmarks.latency import machine_info
from benchmarks.results_file import save_results
from bot.crm.db import make_engine, make_sessionmaker
from bot.crm.models import Conversation
from bot.settings import PROJECT_ROOT, Settings
from tests.support.visitors import named_visitor

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "e2e.json"
DATA = PROJECT_ROOT / "benchmarks" / "data"
BITEXT_CSV = (
    PROJECT_ROOT.parent / "shared" / "datasets" / "bitext-customer-support" / "bitext-customer-service-8k.csv"
)
SETS = ("bitext", "kb", "unanswerable", "out_of_scope")
BUCKETS = ("right", "right_in_choice", "choice_without", "wrong", "no_answer")
# The order form's purpose slot -> the flow it serves.
ORDER_FLOWS = {"track": "track_order", "cancel": "cancel_order", "refund": "refund"}
NO_ANSWERS = frozenset({"no_answer", "out_of_scope"})


@dataclass(frozen=True)
class Case:
    text: str
    label: str
    accepted: tuple[str, ...]


@dataclass
class Outcome:
    key: str  # article:<slug>, choice, flow:<name>, handover, survey, no_answer, out_of_scope, other:...
    offered: list[str] = field(default_factory=list)  # the articles of a choice
    reply: str = ""
    parse: dict[str, Any] = field(default_factory=dict)  # what the NLU made of the message


def parse_of(tracker: dict[str, Any]) -> dict[str, Any]:
    """The NLU's reading of the chat's first message: intent, confidence, runner-up, entities."""
    user = next((e for e in tracker.get("events") or [] if e.get("event") == "user"), None)
    data = (user or {}).get("parse_data") or {}
    ranking = data.get("intent_ranking") or []
    return {
        "intent": (data.get("intent") or {}).get("name"),
        "confidence": round(float((data.get("intent") or {}).get("confidence") or 0.0), 4),
        "runner_up": ranking[1]["name"] if len(ranking) > 1 else None,
        "entities": sorted({str(e.get("entity")) for e in data.get("entities") or []}),
    }


# --- data ---------------------------------------------------------------------------------------


def article_flows(path: Path = DATA / "e2e_article_flows.yml") -> dict[str, tuple[str, ...]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))["flows"]
    return {slug: tuple(outcomes) for slug, outcomes in data.items()}


def widen(accepted: tuple[str, ...], flows: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The accepted outcomes plus the flows that serve the same need as an accepted article."""
    more = [flow for outcome in accepted for flow in flows.get(outcome.removeprefix("article:"), ())]
    return tuple(dict.fromkeys([*accepted, *more]))


def half_of(text: str) -> str:
    """ "tune" or "report", by a hash of the normalised text: the same every run, on every machine."""
    digest = hashlib.sha256(" ".join(text.lower().split()).encode("utf-8")).digest()
    return "tune" if digest[0] % 2 == 0 else "report"


def _rank(text: str) -> str:
    return hashlib.sha256(("sample:" + text).encode("utf-8")).hexdigest()


def bitext_cases(path: Path, mapping_path: Path, per_label: int, half: str) -> list[Case]:
    mapping = yaml.safe_load(mapping_path.read_text(encoding="utf-8"))["labels"]
    by_label: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            text, label = row["utterance"].strip(), row["intent"].strip()
            if text and (half == "both" or half_of(text) == half):
                by_label[label].append(text)
    missing = sorted(set(by_label) - set(mapping))
    if missing:
        raise SystemExit(f"{mapping_path.name} has no outcomes for {missing}")
    cases = []
    for label in sorted(by_label):
        texts = sorted(set(by_label[label]), key=_rank)
        cases += [Case(t, label, tuple(mapping[label])) for t in texts[: per_label or None]]
    return cases


def kb_cases(half: str) -> list[Case]:
    data = yaml.safe_load((DATA / "kb_questions.yml").read_text(encoding="utf-8"))["questions"]
    return [
        Case(item["q"], item["slug"], (f"article:{item['slug']}",))
        for item in data
        if half == "both" or half_of(item["q"]) == half
    ]


def unanswerable_cases(half: str) -> list[Case]:
    data = yaml.safe_load((DATA / "kb_unanswerable.yml").read_text(encoding="utf-8"))["questions"]
    return [Case(q, "unanswerable", ("no_answer",)) for q in data if half == "both" or half_of(q) == half]


def out_of_scope_cases(half: str) -> list[Case]:
    with (DATA / "nlu_out_of_scope.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Case(row["utterance"], row["intent"], ("out_of_scope",))
        for row in rows
        if half == "both" or half_of(row["utterance"]) == half
    ]


# --- one message --------------------------------------------------------------------------------


def classify(body: dict[str, Any], tracker: dict[str, Any]) -> Outcome:
    """The first reply (the gateway's answer) and Rasa's tracker after it -> what the customer got."""
    messages = [m for m in body.get("messages", []) if m.get("author") in ("bot", "system")]
    reply = "\n".join(str(m.get("text") or "") for m in messages)
    events = tracker.get("events") or []
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    actions = [e.get("name") for e in events[last_user + 1 :] if e.get("event") == "action"]
    loop = (tracker.get("active_loop") or {}).get("name")
    slots = tracker.get("slots") or {}
    if body.get("mode") == "pending_agent":
        return Outcome("handover", reply=reply)
    for message in messages:
        if slug := (message.get("metadata") or {}).get("kb_article"):
            # action_request_human may have run and given the message to an article instead.
            return Outcome(f"article:{slug}", reply=reply)
    if "action_request_human" in actions:
        return Outcome("handover", reply=reply)
    offered = [
        _slug_of(button["payload"])
        for message in messages
        for button in message.get("buttons") or []
        if str(button.get("payload", "")).startswith("/choose_article")
    ]
    if offered:
        return Outcome("choice", offered=[s for s in offered if s], reply=reply)
    named = [a for a in actions if a not in ("action_listen", None)]
    if loop is None and named and named[-1] == "action_answer_question":
        # A flow's first action handed the message to the knowledge base, which had nothing.
        return Outcome("no_answer", reply=reply)
    if loop == "order_form" or "action_order_request" in actions:
        return Outcome(f"flow:{ORDER_FLOWS.get(str(slots.get('order_purpose')), 'track_order')}", reply=reply)
    if loop == "complaint_form" or "action_start_complaint" in actions:
        return Outcome("flow:complaint", reply=reply)
    if loop == "ticket_form":
        purpose = "reopen_ticket" if slots.get("ticket_purpose") == "reopen" else "check_ticket"
        return Outcome(f"flow:{purpose}", reply=reply)
    if "action_list_orders" in actions:
        return Outcome("flow:list_orders", reply=reply)
    if loop == "csat_form" or "action_start_csat" in actions:
        return Outcome("survey", reply=reply)
    if "action_out_of_scope" in actions:
        return Outcome("out_of_scope", reply=reply)
    if "action_answer_question" in actions:
        return Outcome("no_answer", reply=reply)
    return Outcome(f"other:{named[0] if named else 'nothing'}", reply=reply)


def _slug_of(payload: str) -> str | None:
    start = payload.find("{")
    if start < 0:
        return None
    try:
        return str(yaml.safe_load(payload[start:]).get("kb_article"))
    except (yaml.YAMLError, AttributeError):
        return None


def judge(outcome: Outcome, accepted: tuple[str, ...]) -> str:
    if outcome.key in accepted:
        return "right"
    if outcome.key == "choice":
        return (
            "right_in_choice"
            if any(f"article:{s}" in accepted for s in outcome.offered)
            else "choice_without"
        )
    if outcome.key in NO_ANSWERS:
        return "no_answer"
    return "wrong"


class Probe:
    """Sends one message as a new chat and reads what came back, from the gateway and from Rasa."""

    def __init__(self, gateway: str, settings: Settings) -> None:
        self.gateway, self.settings = gateway.rstrip("/"), settings
        self.rasa = settings.rasa_urls[0].rstrip("/")
        self.sessions = make_sessionmaker(make_engine(settings))

    def sender_of(self, conversation_id: int) -> str:
        with self.sessions() as db:
            return str(db.scalar(select(Conversation.sender_id).where(Conversation.id == conversation_id)))

    async def send(self, http: httpx.AsyncClient, case: Case) -> tuple[Outcome, float]:
        session = f"bench-e2e-{uuid.uuid4().hex}"
        for _attempt in range(5):
            started = time.perf_counter()
            response = await http.post(
                f"{self.gateway}/api/web/messages",
                json={"session": named_visitor(session), "text": case.text},
                timeout=120,
            )
            took = time.perf_counter() - started
            if response.status_code != 429:
                break
            await asyncio.sleep(float(response.json().get("retry_after", 5)))
        if response.status_code == 400:
            return Outcome("other:refused", reply=response.text), took
        response.raise_for_status()
        body = response.json()
        sender = await asyncio.to_thread(self.sender_of, body["conversation_id"])
        tracker = await http.get(
            f"{self.rasa}/conversations/{sender}/tracker",
            params={"token": self.settings.rasa_token, "include_events": "AFTER_RESTART"},
            timeout=60,
        )
        tracker.raise_for_status()
        outcome = classify(body, tracker.json())
        outcome.parse = parse_of(tracker.json())
        return outcome, took


async def run_cases(probe: Probe, cases: list[Case], concurrency: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(http: httpx.AsyncClient, case: Case) -> dict[str, Any]:
        nonlocal done
        async with gate:
            outcome, took = await probe.send(http, case)
        done += 1
        if done % 100 == 0:
            print(f"    {done}/{len(cases)}", flush=True)
        return {
            "text": case.text,
            "label": case.label,
            "outcome": outcome.key,
            "offered": outcome.offered,
            "verdict": judge(outcome, case.accepted),
            "accepted": list(case.accepted),
            "parse": outcome.parse,
            "seconds": round(took, 3),
        }

    async with httpx.AsyncClient() as http:
        return list(await asyncio.gather(*(one(http, case) for case in cases)))


# --- figures ------------------------------------------------------------------------------------


def shares(rows: list[dict[str, Any]]) -> dict[str, float]:
    counts = Counter(row["verdict"] for row in rows)
    return {bucket: round(counts[bucket] / len(rows), 4) if rows else 0.0 for bucket in BUCKETS}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    confusions = Counter(
        (row["label"], row["outcome"]) for row in rows if row["verdict"] not in ("right", "right_in_choice")
    )
    seconds = sorted(row["seconds"] for row in rows)
    return {
        "messages": len(rows),
        "shares": shares(rows),
        "outcomes": dict(Counter(row["outcome"].split(":")[0] for row in rows).most_common()),
        "per_label": {
            label: {"messages": len(items), **shares(items)} for label, items in sorted(by_label.items())
        },
        "top_confusions": [
            {"label": label, "outcome": outcome, "count": count}
            for (label, outcome), count in confusions.most_common(20)
        ],
        "latency_seconds": {
            "median": round(statistics.median(seconds), 3) if seconds else None,
            "p95": round(seconds[int(0.95 * (len(seconds) - 1))], 3) if seconds else None,
        },
    }


def print_summary(name: str, summary: dict[str, Any]) -> None:
    figures = summary["shares"]
    print(f"\n{name}: {summary['messages']} messages (median {summary['latency_seconds']['median']} s)")
    print("  " + "  ".join(f"{bucket} {figures[bucket]:.1%}" for bucket in BUCKETS))
    worst = sorted(summary["per_label"].items(), key=lambda item: item[1]["right"])[:8]
    if len(summary["per_label"]) > 1:
        print("  weakest labels: " + ", ".join(f"{label} {f['right']:.0%}" for label, f in worst))
    for confusion in summary["top_confusions"][:8]:
        print(f"  {confusion['count']:4d}  {confusion['label']} -> {confusion['outcome']}")


# --- running ------------------------------------------------------------------------------------


@contextmanager
def private_stack() -> Iterator[tuple[str, Settings]]:
    """A stack of its own on a temporary database, so that the run leaves nothing behind."""
    from tests.support.stack import running_stack, stack_settings

    with tempfile.TemporaryDirectory(prefix="kefu-bench-e2e-") as workdir:
        # Every message comes from 127.0.0.1: the per-address limit is off, as in benchmarks/load.py.
        settings = stack_settings(Path(workdir)).model_copy(update={"web_rate_per_address_per_minute": 0})
        with running_stack(Path(workdir), settings=settings) as stack:
            yield stack.gateway_url, settings


def load_cases(args: argparse.Namespace) -> dict[str, list[Case]]:
    cases = _load_cases(args)
    flows = article_flows()
    return {
        name: [Case(case.text, case.label, widen(case.accepted, flows)) for case in items]
        for name, items in cases.items()
    }


def _load_cases(args: argparse.Namespace) -> dict[str, list[Case]]:
    cases: dict[str, list[Case]] = {}
    for name in args.sets:
        if name == "bitext":
            if not args.bitext.exists():
                print(f"skipping bitext: {args.bitext} is missing", file=sys.stderr)
                continue
            cases[name] = bitext_cases(args.bitext, args.bitext_map, args.per_label, args.half)
        elif name == "kb":
            cases[name] = kb_cases(args.half)
        elif name == "unanswerable":
            cases[name] = unanswerable_cases(args.half)
        elif name == "out_of_scope":
            cases[name] = out_of_scope_cases(args.half)
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=lambda v: v.split(","), default=list(SETS), help="comma-separated")
    parser.add_argument("--half", choices=("tune", "report", "both"), default="report")
    parser.add_argument("--per-label", type=int, default=40, help="Bitext messages per label (0: all)")
    parser.add_argument("--bitext", type=Path, default=BITEXT_CSV)
    parser.add_argument("--bitext-map", type=Path, default=DATA / "e2e_bitext_map.yml")
    parser.add_argument("--gateway", help="measure this running gateway instead of a private stack")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    unknown = set(args.sets) - set(SETS)
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}; choose from {', '.join(SETS)}")
    cases = load_cases(args)
    print(
        f"First reply, end to end ({args.half} half): " + ", ".join(f"{k} {len(v)}" for k, v in cases.items())
    )

    results: dict[str, Any] = {
        "benchmark": "e2e",
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "half": args.half,
        "per_label": args.per_label,
        "sets": {},
    }
    with _stack(args.gateway) as (gateway, settings):
        probe = Probe(gateway, settings)
        for name, items in cases.items():
            print(f"  {name}: {len(items)} messages ...", flush=True)
            rows = asyncio.run(run_cases(probe, items, args.concurrency))
            summary = summarise(rows)
            results["sets"][name] = {**summary, "replies": rows}
            print_summary(name, summary)
    path = save_results(args.out, results)
    print(f"\nsaved {path}")
    return 0


@contextmanager
def _stack(gateway: str | None) -> Iterator[tuple[str, Settings]]:
    if gateway:
        yield gateway, Settings()
    else:
        with private_stack() as running:
            yield running


if __name__ == "__main__":
    raise SystemExit(main())
