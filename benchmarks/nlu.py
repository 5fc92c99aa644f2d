"""How well the trained model understands messages we did not write: intent accuracy on a labelled
CSV, through Rasa's `/model/parse` on a running server (the whole NLU pipeline, fallback included).

A data set is a CSV with `utterance` and `intent` columns plus a mapping file from its intents to
ours. A mapping names one intent, or a list whose first entry is the main one and whose others
are also right (Bitext's "where is my item" is a delivery question or tracking; both are good
answers here):

    intents:
      track_order: track_order
      delivery_period: [ask_question, track_order]

A prediction of `out_of_scope` or `nlu_fallback` (the model is not confident) means "rejected":
the assistant says it cannot help with that. For an in-scope set the share rejected is the false
rejection rate; for the out-of-scope set, where every intent maps to out_of_scope, recognising a
message means rejecting it.

Printed and saved (benchmarks/results/nlu.json): accuracy, macro F1 over our intents, precision
and recall per intent, accuracy per source intent, and the most frequent confusions.

`.venv/bin/python -m benchmarks.nlu` runs the Bitext set (../shared/datasets, never used for
training) and our out-of-scope set (benchmarks/data/nlu_out_of_scope.csv); `--csv F --map M` runs
any other set. Also part of `make bench` and `make bench-nlu`.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.latency import machine_info
from benchmarks.nlu_parse import Parsed, parse_all, running_rasa
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "nlu.json"
DATA = PROJECT_ROOT / "benchmarks" / "data"
BITEXT_CSV = (
    PROJECT_ROOT.parent / "shared" / "datasets" / "bitext-customer-support" / "bitext-customer-service-8k.csv"
)
REJECTED = frozenset({"out_of_scope", "nlu_fallback"})
TARGET_ACCURACY = 0.95
TARGET_OUT_OF_SCOPE = 0.90
TARGET_FALSE_REJECTION = 0.03


@dataclass(frozen=True)
class Example:
    text: str
    source_intent: str


@dataclass(frozen=True)
class DataSet:
    name: str
    examples: list[Example]
    accepted: dict[str, list[str]]  # source intent -> our intents, the main one first


def load_mapping(path: Path) -> dict[str, list[str]]:
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("intents"), dict):
        raise SystemExit(f"{path}: expected a mapping under 'intents:'")
    mapping: dict[str, list[str]] = {}
    for source, target in raw["intents"].items():
        targets = [target] if isinstance(target, str) else target if isinstance(target, list) else []
        if not targets or not all(isinstance(t, str) for t in targets):
            raise SystemExit(
                f"{path}: intent {source!r} maps to {target!r}; give an intent or a list of them"
            )
        mapping[str(source)] = targets
    return mapping


def load_dataset(name: str, csv_path: Path, map_path: Path) -> DataSet:
    accepted = load_mapping(map_path)
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"utterance", "intent"} <= set(rows[0]):
        raise SystemExit(f"{csv_path}: needs 'utterance' and 'intent' columns")
    unmapped = sorted({row["intent"] for row in rows} - set(accepted))
    if unmapped:
        raise SystemExit(f"{map_path} does not map these intents of {csv_path.name}: {', '.join(unmapped)}")
    examples = [Example(row["utterance"].strip(), row["intent"]) for row in rows if row["utterance"].strip()]
    return DataSet(name, examples, accepted)


def score(dataset: DataSet, parsed: list[Parsed]) -> dict[str, Any]:
    """Accuracy, macro F1, per-intent figures and confusions for one data set."""
    gold: list[str] = []
    predicted: list[str] = []
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    confusions: Counter[tuple[str, str]] = Counter()
    examples_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    for example, result in zip(dataset.examples, parsed, strict=True):
        accepted = dataset.accepted[example.source_intent]
        # A prediction among the accepted intents counts as that intent being the right one.
        truth = result.intent if result.intent in accepted else accepted[0]
        gold.append(truth)
        predicted.append(result.intent)
        by_source[example.source_intent][result.intent] += 1
        if result.intent not in accepted:
            confusions[(example.source_intent, result.intent)] += 1
            if len(examples_of[(example.source_intent, result.intent)]) < 3:
                examples_of[(example.source_intent, result.intent)].append(example.text)

    total = len(gold)
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    per_intent: dict[str, dict[str, float | int]] = {}
    for intent in sorted(set(gold)):
        true_positive = sum(g == p == intent for g, p in zip(gold, predicted, strict=True))
        predicted_n = sum(p == intent for p in predicted)
        support = sum(g == intent for g in gold)
        precision = true_positive / predicted_n if predicted_n else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[intent] = {
            "support": support,
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
        }
    out_of_scope_set = all(targets[0] == "out_of_scope" for targets in dataset.accepted.values())
    rejected = sum(p in REJECTED for p in predicted)
    return {
        "examples": total,
        "accuracy": round(correct / total, 4),
        "macro_f1": round(sum(v["f1"] for v in per_intent.values()) / len(per_intent), 4),
        "rejected_share": round(rejected / total, 4),
        "rejected_as_nlu_fallback": sum(p == "nlu_fallback" for p in predicted),
        "kind": "out_of_scope" if out_of_scope_set else "in_scope",
        "per_intent": per_intent,
        "per_source_intent": {
            source: {
                "examples": sum(counts.values()),
                "accuracy": round(
                    sum(n for intent, n in counts.items() if intent in dataset.accepted[source])
                    / sum(counts.values()),
                    4,
                ),
                "predicted": dict(counts.most_common()),
            }
            for source, counts in sorted(by_source.items())
        },
        "top_confusions": [
            {
                "source_intent": source,
                "predicted": intent,
                "count": n,
                "examples": examples_of[(source, intent)],
            }
            for (source, intent), n in confusions.most_common(15)
        ],
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def report(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name}: {result['examples']} messages")
    if result["kind"] == "out_of_scope":
        met = result["accuracy"] >= TARGET_OUT_OF_SCOPE
        print(
            f"  recognised as out of scope: {_pct(result['accuracy'])} "
            f"(of which the model was unsure, nlu_fallback: {result['rejected_as_nlu_fallback']}) "
            f"- target >= {_pct(TARGET_OUT_OF_SCOPE)}: {'met' if met else 'NOT met'}"
        )
    else:
        accurate = result["accuracy"] >= TARGET_ACCURACY
        print(
            f"  accuracy {_pct(result['accuracy'])} (target >= {_pct(TARGET_ACCURACY)}: "
            f"{'met' if accurate else 'NOT met'}), macro F1 {result['macro_f1']:.3f}, "
            f"wrongly rejected {_pct(result['rejected_share'])} (target <= {_pct(TARGET_FALSE_REJECTION)}: "
            f"{'met' if result['rejected_share'] <= TARGET_FALSE_REJECTION else 'NOT met'})"
        )
    print(f"  {'our intent':<16}{'support':>8}{'precision':>11}{'recall':>8}{'F1':>7}")
    for intent, figures in result["per_intent"].items():
        print(
            f"  {intent:<16}{figures['support']:>8}{figures['precision']:>11.3f}"
            f"{figures['recall']:>8.3f}{figures['f1']:>7.3f}"
        )
    print(f"  {'their intent':<28}{'n':>6}{'right':>8}  most often predicted")
    for source, figures in result["per_source_intent"].items():
        top = ", ".join(f"{i} {n}" for i, n in list(figures["predicted"].items())[:3])
        print(f"  {source:<28}{figures['examples']:>6}{_pct(figures['accuracy']):>8}  {top}")
    print("  most frequent confusions:")
    for confusion in result["top_confusions"][:10]:
        print(
            f"    {confusion['count']:>4} x {confusion['source_intent']} -> {confusion['predicted']}"
            f"   e.g. {confusion['examples'][0]!r}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="a data set (utterance,intent); default: Bitext and ours")
    parser.add_argument("--map", type=Path, help="its mapping file (with --csv)")
    parser.add_argument(
        "--limit", type=int, default=0, help="only the first N messages of each set (a quick look)"
    )
    args = parser.parse_args(argv)
    if args.csv:
        if not args.map:
            parser.error("--csv needs --map")
        datasets = [load_dataset(args.csv.stem, args.csv, args.map)]
    else:
        datasets = [load_dataset("bitext", BITEXT_CSV, DATA / "nlu_bitext_map.yml")]
        if (DATA / "nlu_out_of_scope.csv").exists():
            datasets.append(
                load_dataset("out_of_scope", DATA / "nlu_out_of_scope.csv", DATA / "nlu_out_of_scope_map.yml")
            )
    if args.limit:
        datasets = [
            DataSet(d.name, d.examples[:: max(1, len(d.examples) // args.limit)], d.accepted)
            for d in datasets
        ]

    results: dict[str, Any] = {}
    with running_rasa() as server:
        for dataset in datasets:
            parsed = parse_all(server, [example.text for example in dataset.examples])
            results[dataset.name] = score(dataset, parsed)
    for name, result in results.items():
        report(name, result)
    out = {"measured_at": datetime.now(UTC).isoformat(), "machine": machine_info(), "datasets": results}
    save_results(RESULTS_PATH, out)
    print(f"\nSaved {RESULTS_PATH.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
