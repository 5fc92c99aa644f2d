"""Choose the routing and answer thresholds on the tune half of the end-to-end sets.

Reads a `make bench-e2e` result (run with `--half tune`), searches every message in an index built
from the seed articles (as `benchmarks/kb_retrieval.py` does), and replays each first reply under
other thresholds: a message the router would give to the knowledge base, or one the knowledge base
already answered, gets the reply the answer rules would give; every other message keeps the reply
it really got. Prints the best settings per objective and saves them (JSON); the reported figures
come from a new `make bench-e2e` run on the report half with the chosen settings.

    .venv/bin/python -m benchmarks.routing --e2e benchmarks/results/e2e-tune.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.e2e import BUCKETS
from benchmarks.kb_retrieval import CachedEncoder, build_index
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT
from knowledge_base import answers, seeds
from knowledge_base.index import Hit
from knowledge_base.routing import Reading, RoutingPolicy, prefer_article

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "routing.json"
# Replies that came from the knowledge-base search (not from a flow, a hand-over or a rule).
KB_INTENTS = frozenset({"ask_question", "nlu_fallback"})
# How much each set counts; a wrong answer costs twice what a right one gains.
WEIGHTS = {"bitext": 1.0, "kb": 1.0, "unanswerable": 1.0, "out_of_scope": 0.5}


@dataclass(frozen=True)
class Thresholds:
    routing: RoutingPolicy
    answer_score: float
    suggest_score: float


def kb_outcome(hits: list[Hit], limits: Thresholds) -> tuple[str, list[str]]:
    decision = answers.decide(hits, limits.answer_score, limits.suggest_score, margin=limits.routing.margin)
    if decision.band == "answer" or (decision.band == "choose" and answers.plausible(decision) == 1):
        return f"article:{decision.hits[0].slug}", []
    if decision.band == "choose":
        return "choice", [hit.slug for hit in decision.hits]
    return "no_answer", []


def verdict(outcome: str, offered: list[str], accepted: list[str]) -> str:
    if outcome in accepted:
        return "right"
    if outcome == "choice":
        return "right_in_choice" if any(f"article:{s}" in accepted for s in offered) else "choice_without"
    if outcome in ("no_answer", "out_of_scope"):
        return "no_answer"
    return "wrong"


def replay(row: dict[str, Any], hits: list[Hit], limits: Thresholds) -> str:
    parse = row.get("parse") or {}
    reading = Reading(
        parse.get("intent"), float(parse.get("confidence") or 0.0), frozenset(parse.get("entities") or [])
    )
    from_kb = reading.intent in KB_INTENTS and row["outcome"].split(":")[0] in (
        "article",
        "choice",
        "no_answer",
    )
    if from_kb or prefer_article(reading, hits, limits.routing):
        outcome, offered = kb_outcome(hits, limits)
        return verdict(outcome, offered, row["accepted"])
    return str(row["verdict"])


def figures(verdicts: list[str]) -> dict[str, float]:
    counts = Counter(verdicts)
    return {bucket: round(counts[bucket] / len(verdicts), 4) if verdicts else 0.0 for bucket in BUCKETS}


def score(per_set: dict[str, dict[str, float]]) -> float:
    total = 0.0
    for name, shares in per_set.items():
        right = shares["no_answer"] if name == "unanswerable" else shares["right"]
        wrong = (
            1.0 - shares["no_answer"]
            if name == "unanswerable"
            else shares["wrong"] + shares["choice_without"]
        )
        total += WEIGHTS.get(name, 1.0) * (right - 2.0 * wrong)
    return round(total, 4)


def grid() -> list[Thresholds]:
    return [
        Thresholds(RoutingPolicy(article, unsure, sure, margin), answer, suggest)
        for article, unsure, sure, margin, answer, suggest in itertools.product(
            (0.70, 0.74, 0.78),
            (0.5, 0.6, 0.7),
            (0.75, 0.8, 9.0),
            (0.01, 0.015, 0.02, 0.03),
            (0.62, 0.66),
            (0.55, 0.58, 0.60, 0.62),
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e2e", type=Path, required=True, help="a bench-e2e result on the tune half")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    run = json.loads(args.e2e.read_text(encoding="utf-8"))
    if run.get("half") != "tune":
        raise SystemExit("choose thresholds on the tune half only (bench-e2e --half tune)")
    rows = {name: data["replies"] for name, data in run["sets"].items()}
    encoder = CachedEncoder()
    index = build_index(seeds.read_seed_files(), encoder)
    queries = {
        row["text"]: answers.query_from(answers.without_lead_in(row["text"]))
        for items in rows.values()
        for row in items
    }
    encoder.prime(queries.values())
    hits = {text: index.search(query, k=5) for text, query in queries.items()}

    results = []
    for limits in grid():
        per_set = {
            name: figures([replay(row, hits[row["text"]], limits) for row in items])
            for name, items in rows.items()
        }
        results.append({"limits": limits, "sets": per_set, "score": score(per_set)})
    results.sort(key=lambda item: -item["score"])
    # Routing off: no article takes a message from its flow, however close.
    today = Thresholds(RoutingPolicy(9.0, 0.0, 9.0, 0.03, decisive_score=9.0), 0.66, 0.55)
    baseline = {
        name: figures([replay(row, hits[row["text"]], today) for row in items])
        for name, items in rows.items()
    }
    print(f"replayed today's rules: score {score(baseline)}")
    for name, shares in baseline.items():
        print(f"  {name:13s} " + "  ".join(f"{b} {shares[b]:.1%}" for b in BUCKETS))
    for best in results[:5]:
        print(f"\nscore {best['score']}: {best['limits']}")
        for name, shares in best["sets"].items():
            print(f"  {name:13s} " + "  ".join(f"{b} {shares[b]:.1%}" for b in BUCKETS))
    out = {
        "benchmark": "routing",
        "e2e_run": run.get("run_at"),
        "baseline": baseline,
        "best": [
            {
                "routing": vars(item["limits"].routing),
                "answer_score": item["limits"].answer_score,
                "suggest_score": item["limits"].suggest_score,
                "sets": item["sets"],
                "score": item["score"],
            }
            for item in results[:20]
        ],
    }
    print(f"\nsaved {save_results(args.out, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
