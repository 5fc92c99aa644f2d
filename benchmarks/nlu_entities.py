"""Entity-extraction quality of the trained model: precision, recall and F1 per entity type, with errors.

`.venv/bin/python -m benchmarks.nlu_entities` starts Rasa with models/kefu.tar.gz (benchmarks/nlu_parse.py),
sends every message of the labelled test set benchmarks/data/nlu_entities.yml through `/model/parse` and
compares the entities it returns with the gold spans.

- The test set uses the training data's annotation, `[100001](order_number)`; `parse_annotated` turns a
  line into the plain text and its gold spans.
- A prediction is correct when its type is that of a gold span in the same message and its value equals
  the gold text (case-insensitive, stripped). A same-type prediction that only overlaps a gold span is
  counted as "partial" (and, for the strict figures, as one false positive and one miss); a prediction
  of another type over a gold span is "wrong_type".
- Several extractors may return the same span (e.g. DIETClassifier and RegexEntityExtractor): it counts
  once, and the report says which extractors found it.
- For each gold span the report also says whether the regex for its type in data/ (the RegexFeaturizer's
  feature) matches it exactly, which tells a model miss from a form the regex does not even cover.

Only the entity types in ENTITY_TYPES are scored; others the model returns (kb_article, ...) are counted
but not scored. Results go to benchmarks/results/nlu_entities.json.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from benchmarks.latency import machine_info
from benchmarks.nlu_parse import parse_all, running_rasa
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "nlu_entities.json"
TEST_SET_PATH = PROJECT_ROOT / "benchmarks" / "data" / "nlu_entities.yml"
TRAINING_DATA_DIR = PROJECT_ROOT / "data"

ENTITY_TYPES: tuple[str, ...] = ("order_number", "email", "phone", "ticket_reference")

# `[shown text](entity)`; the shown text may hold brackets like "(555) 123 4567" but no "]".
ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<entity>[A-Za-z_][A-Za-z0-9_]*)\)")

ErrorKind = Literal["missed", "partial", "wrong_type", "spurious"]


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int
    value: str


@dataclass(frozen=True)
class Example:
    text: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Prediction:
    entity: str
    start: int
    end: int
    value: str
    extractors: tuple[str, ...] = field(default=())


@dataclass
class TypeScore:
    entity: str
    gold: int = 0
    predicted: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    partial: int = 0
    wrong_type: int = 0
    # Gold spans that the type's regex in data/ matches exactly (None when not computed).
    regex_covers: int | None = None

    @property
    def precision(self) -> float:
        return _ratio(self.true_positives, self.true_positives + self.false_positives)

    @property
    def recall(self) -> float:
        return _ratio(self.true_positives, self.true_positives + self.false_negatives)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    def as_dict(self) -> dict[str, Any]:
        figures = asdict(self)
        figures.update(precision=round(self.precision, 4), recall=round(self.recall, 4), f1=round(self.f1, 4))
        return figures


@dataclass
class Scores:
    per_type: dict[str, TypeScore]
    micro: TypeScore
    errors: list[dict[str, Any]]
    # Every correct prediction with the extractors that found it.
    hits: list[dict[str, Any]]
    # Correct predictions per extractor (a span found by two extractors counts for both).
    extractor_hits: dict[str, int]
    extractor_false_positives: dict[str, int]
    unscored_entities: dict[str, int]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# --- the labelled set ---------------------------------------------------------------------------------


def parse_annotated(line: str) -> Example:
    """`"where's [100234](order_number)?"` -> plain text and gold spans (offsets in the plain text)."""
    parts: list[str] = []
    spans: list[Span] = []
    length = 0
    cursor = 0
    for match in ANNOTATION.finditer(line):
        before = line[cursor : match.start()]
        parts.append(before)
        length += len(before)
        shown = match["text"]
        spans.append(Span(match["entity"], length, length + len(shown), shown))
        parts.append(shown)
        length += len(shown)
        cursor = match.end()
    parts.append(line[cursor:])
    return Example("".join(parts), tuple(spans))


def load_examples(path: Path = TEST_SET_PATH) -> list[Example]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [parse_annotated(str(line)) for line in document["examples"]]


def load_regexes(data_dir: Path = TRAINING_DATA_DIR) -> dict[str, list[re.Pattern[str]]]:
    """The `regex:` entries of data/*.yml by name, compiled case-insensitively like the RegexFeaturizer."""
    patterns: dict[str, list[re.Pattern[str]]] = {}
    for path in sorted(data_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in document.get("nlu") or []:
            if "regex" not in item:
                continue
            for line in str(item.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    patterns.setdefault(item["regex"], []).append(re.compile(line[2:], re.IGNORECASE))
    return patterns


def entity_extractors(config_path: Path = PROJECT_ROOT / "config.yml") -> list[str]:
    """The pipeline components that can return entities, to state in the report what was measured."""
    pipeline = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}).get("pipeline") or []
    names = [str(component.get("name")) for component in pipeline]
    return [name for name in names if name.endswith("EntityExtractor") or name == "DIETClassifier"]


def regex_covers(text: str, span: Span, patterns: Sequence[re.Pattern[str]]) -> bool:
    """Whether one of the patterns matches exactly this span of the text (searching the whole text, so
    lookbehinds and word boundaries see the neighbours)."""
    return any(
        match.start() == span.start and match.end() == span.end
        for pattern in patterns
        for match in pattern.finditer(text)
    )


# --- predictions and scoring --------------------------------------------------------------------------


def merge_predictions(entities: Iterable[dict[str, Any]], text: str) -> list[Prediction]:
    """Rasa's entity dicts for one message, one Prediction per (type, start, end) with every extractor
    that found it: two extractors agreeing on a span is still one prediction."""
    merged: dict[tuple[str, int, int], Prediction] = {}
    for entity in entities:
        start, end = int(entity["start"]), int(entity["end"])
        key = (str(entity["entity"]), start, end)
        extractor = str(entity.get("extractor") or "unknown")
        # The value may be rewritten by a synonym mapper; without one the text slice is the same thing.
        value = entity.get("value")
        value = text[start:end] if value is None else str(value)
        known = merged.get(key)
        if known is None:
            merged[key] = Prediction(key[0], start, end, value, (extractor,))
        elif extractor not in known.extractors:
            merged[key] = Prediction(
                known.entity, start, end, known.value, tuple(sorted((*known.extractors, extractor)))
            )
    return sorted(merged.values(), key=lambda p: (p.start, p.end, p.entity))


def _normalise(value: str) -> str:
    return value.strip().casefold()


def _overlaps(a: Span | Prediction, b: Span | Prediction) -> bool:
    return a.start < b.end and b.start < a.end


def score(
    examples: Sequence[Example],
    predictions: Sequence[Sequence[Prediction]],
    entity_types: Sequence[str] = ENTITY_TYPES,
    regexes: dict[str, list[re.Pattern[str]]] | None = None,
) -> Scores:
    """Strict per-type precision/recall/F1 (type and value must match), partial overlaps and wrong types
    counted on the side, micro averages over the types, and every error with its message."""
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} prediction lists")
    scored = set(entity_types)
    per_type = {name: TypeScore(name) for name in entity_types}
    if regexes is not None:
        for name in entity_types:
            per_type[name].regex_covers = 0
    errors: list[dict[str, Any]] = []
    hits: list[dict[str, Any]] = []
    extractor_hits: Counter[str] = Counter()
    extractor_false_positives: Counter[str] = Counter()
    unscored: Counter[str] = Counter()

    for example, predicted in zip(examples, predictions, strict=True):
        gold = [span for span in example.spans if span.entity in scored]
        mine = [p for p in predicted if p.entity in scored]
        unscored.update(p.entity for p in predicted if p.entity not in scored)
        for span in gold:
            per_type[span.entity].gold += 1
            if regexes is not None and regex_covers(example.text, span, regexes.get(span.entity, [])):
                per_type[span.entity].regex_covers = (per_type[span.entity].regex_covers or 0) + 1
        for prediction in mine:
            per_type[prediction.entity].predicted += 1

        # Exact matches first, each prediction used once, so a partial elsewhere cannot steal one.
        matched_gold: set[int] = set()
        matched_pred: set[int] = set()
        for g, span in enumerate(gold):
            for p, prediction in enumerate(mine):
                if (
                    p not in matched_pred
                    and prediction.entity == span.entity
                    and _normalise(prediction.value) == _normalise(span.value)
                ):
                    matched_gold.add(g)
                    matched_pred.add(p)
                    per_type[span.entity].true_positives += 1
                    extractor_hits.update(prediction.extractors)
                    hits.append(
                        {
                            "entity": span.entity,
                            "value": prediction.value,
                            "extractors": list(prediction.extractors),
                            "text": example.text,
                        }
                    )
                    break

        missed = [span for g, span in enumerate(gold) if g not in matched_gold]
        extra = [prediction for p, prediction in enumerate(mine) if p not in matched_pred]
        partial_pairs = {
            (id(span), id(prediction))
            for span in missed
            for prediction in extra
            if prediction.entity == span.entity and _overlaps(span, prediction)
        }
        for span in missed:
            per_type[span.entity].false_negatives += 1
            same = [p for p in extra if (id(span), id(p)) in partial_pairs]
            other = [p for p in extra if p.entity != span.entity and _overlaps(span, p)]
            kind: ErrorKind = "partial" if same else "wrong_type" if other else "missed"
            if same:
                per_type[span.entity].partial += 1
            elif other:
                per_type[span.entity].wrong_type += 1
            errors.append(
                {
                    "kind": kind,
                    "side": "gold",
                    "entity": span.entity,
                    "value": span.value,
                    "text": example.text,
                    "predicted_instead": [_describe(p) for p in same or other],
                    "regex_covers": None
                    if regexes is None
                    else regex_covers(example.text, span, regexes.get(span.entity, [])),
                }
            )
        for prediction in extra:
            per_type[prediction.entity].false_positives += 1
            extractor_false_positives.update(prediction.extractors)
            if any((id(span), id(prediction)) in partial_pairs for span in missed):
                kind = "partial"
            elif any(_overlaps(span, prediction) for span in gold):
                kind = "wrong_type"
            else:
                kind = "spurious"
            errors.append(
                {
                    "kind": kind,
                    "side": "predicted",
                    "entity": prediction.entity,
                    "value": prediction.value,
                    "text": example.text,
                    "extractors": list(prediction.extractors),
                    "gold_here": [f"{s.value} ({s.entity})" for s in gold if _overlaps(s, prediction)],
                }
            )

    micro = TypeScore("micro")
    for figures in per_type.values():
        for name in ("gold", "predicted", "true_positives", "false_positives", "false_negatives"):
            setattr(micro, name, getattr(micro, name) + getattr(figures, name))
        micro.partial += figures.partial
        micro.wrong_type += figures.wrong_type
        if figures.regex_covers is not None:
            micro.regex_covers = (micro.regex_covers or 0) + figures.regex_covers
    return Scores(
        per_type=per_type,
        micro=micro,
        errors=errors,
        hits=hits,
        extractor_hits=dict(extractor_hits),
        extractor_false_positives=dict(extractor_false_positives),
        unscored_entities=dict(unscored),
    )


def _describe(prediction: Prediction) -> str:
    return f"{prediction.value} ({prediction.entity}, {'+'.join(prediction.extractors)})"


# --- report -------------------------------------------------------------------------------------------


def table(scores: Scores) -> str:
    header = f"{'entity':<17}{'gold':>5}{'pred':>6}{'TP':>5}{'FP':>5}{'FN':>5}{'part':>6}{'type':>6}"
    header += f"{'P':>8}{'R':>8}{'F1':>8}{'regex':>7}"
    rows = [header, "-" * len(header)]
    for figures in [*scores.per_type.values(), scores.micro]:
        covered = "" if figures.regex_covers is None else str(figures.regex_covers)
        rows.append(
            f"{figures.entity:<17}{figures.gold:>5}{figures.predicted:>6}{figures.true_positives:>5}"
            f"{figures.false_positives:>5}{figures.false_negatives:>5}{figures.partial:>6}"
            f"{figures.wrong_type:>6}{figures.precision:>8.3f}{figures.recall:>8.3f}{figures.f1:>8.3f}"
            f"{covered:>7}"
        )
    return "\n".join(rows)


def format_error(error: dict[str, Any]) -> str:
    if error["side"] == "gold":
        instead = f" -> got {', '.join(error['predicted_instead'])}" if error["predicted_instead"] else ""
        regex = {True: "", False: " [regex misses this form]", None: ""}[error["regex_covers"]]
        return (
            f"  {error['kind']:<10} {error['entity']}: {error['value']!r}{instead}{regex}  | {error['text']}"
        )
    gold = f" (gold: {', '.join(error['gold_here'])})" if error["gold_here"] else ""
    return (
        f"  {error['kind']:<10} {error['entity']}: {error['value']!r} by {'+'.join(error['extractors'])}"
        f"{gold}  | {error['text']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=TEST_SET_PATH, help="labelled test set (YAML)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)

    machine = machine_info()
    examples = load_examples(args.data)
    with running_rasa() as server:
        parsed = parse_all(server, [example.text for example in examples])
    predictions = [merge_predictions(item.entities, item.text) for item in parsed]
    scores = score(examples, predictions, regexes=load_regexes())

    gold_errors = [e for e in scores.errors if e["side"] == "gold"]
    false_positives = [e for e in scores.errors if e["side"] == "predicted"]
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "test_set": str(
            args.data.relative_to(PROJECT_ROOT) if args.data.is_relative_to(PROJECT_ROOT) else args.data
        ),
        "messages": len(examples),
        "messages_without_entities": sum(1 for e in examples if not e.spans),
        "pipeline_entity_extractors": entity_extractors(),
        "matching": "type equal and value equal to the gold text (case-insensitive, stripped)",
        "per_entity": {name: figures.as_dict() for name, figures in scores.per_type.items()},
        "micro": scores.micro.as_dict(),
        "extractors": {
            "correct": scores.extractor_hits,
            "false_positives": scores.extractor_false_positives,
        },
        "unscored_entities": scores.unscored_entities,
        "missed": gold_errors,
        "false_positives": false_positives,
        "correct_predictions": scores.hits,
    }
    save_results(args.output, report)

    print(
        f"Entity extraction on {len(examples)} messages "
        f"({report['messages_without_entities']} without entities)"
    )
    print(
        "(part = same type, overlapping but not exact; type = another type over the span; "
        "regex = gold spans the data/ regex matches exactly)"
    )
    print(table(scores))
    print(
        f"Extractors, correct: {scores.extractor_hits}; false positives: {scores.extractor_false_positives}"
    )
    if scores.unscored_entities:
        print(f"Other entity types returned (not scored): {scores.unscored_entities}")
    print(f"\nMissed gold spans ({len(gold_errors)}):")
    print("\n".join(format_error(e) for e in gold_errors) or "  none")
    print(f"\nFalse positives ({len(false_positives)}):")
    print("\n".join(format_error(e) for e in false_positives) or "  none")
    print(f"\nSaved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
