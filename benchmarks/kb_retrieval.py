"""Retrieval quality of the knowledge-base search on the seed articles: recall, MRR and answer bands.

`make bench-kb` runs it; by hand: `.venv/bin/python -m benchmarks.kb_retrieval` (add `--strict` to exit 1
when a target is missed). The index is built in memory straight from knowledge_base/articles/*.yml, the
way the live index builds it from the database, so no database is needed. Two evaluation sets:

- benchmarks/data/kb_questions.yml: customer-style questions, each with the slug that answers it;
  recall@1, recall@3 and MRR for dense, lexical (BM25) and hybrid search, and how the assistant's
  answer / choose / none bands (knowledge_base/answers.py, thresholds from bot/settings.py) split.
- the Bitext customer-service utterances with benchmarks/data/kb_bitext_map.yml (intent -> slugs):
  how often the top hybrid article is an accepted one, per intent and overall.

Results go to benchmarks/results/kb_retrieval.json.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.latency import machine_info
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT, get_settings
from knowledge_base import answers, embedding, index, seeds, text
from knowledge_base.index import Document, Hit, Mode, SearchIndex
from knowledge_base.seeds import SeedArticle

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "kb_retrieval.json"
QUESTIONS_PATH = PROJECT_ROOT / "benchmarks" / "data" / "kb_questions.yml"
BITEXT_MAP_PATH = PROJECT_ROOT / "benchmarks" / "data" / "kb_bitext_map.yml"
UNANSWERABLE_PATH = PROJECT_ROOT / "benchmarks" / "data" / "kb_unanswerable.yml"
BITEXT_PATH = Path("/work/shared/datasets/bitext-customer-support/bitext-customer-service-8k.csv")

MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")
MRR_DEPTH = 10
# What actions/knowledge.py asks the live index for before deciding on a band.
ANSWER_K = 5
WORST_MISSES = 15

TARGET_RECALL_AT_1 = 0.90
TARGET_RECALL_AT_3 = 0.97

# How a question's hybrid search ends for the customer (see band_outcome).
OUTCOMES = ("answer_right", "answer_wrong", "choice_with_right", "choice_without_right", "no_answer")


# --- the index ----------------------------------------------------------------------------------------


class CachedEncoder:
    """The encoder behind a SearchIndex, with every known query encoded up front in one batch.

    SearchIndex.search encodes one query per call; a batch of thousands is several times faster on
    this CPU, and search() itself still does all the scoring, so the figures are those of the real code.
    """

    def __init__(self) -> None:
        self._vectors: dict[str, np.ndarray] = {}
        self.encode_seconds = 0.0

    def prime(self, texts: Iterable[str]) -> None:
        missing = sorted(set(texts) - self._vectors.keys())
        started = time.perf_counter()
        vectors = embedding.encode(missing)
        self.encode_seconds += time.perf_counter() - started
        self._vectors.update(zip(missing, vectors, strict=True))

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.prime(texts)
        return np.stack([self._vectors[item] for item in texts])


def document_for(
    number: int, article: SeedArticle, embed: Callable[[list[str]], np.ndarray] = embedding.encode
) -> Document:
    """An article as the live index sees it (knowledge_base/store.py), minus the database ids; `embed`
    makes its vectors (the configured encoder unless a benchmark compares another)."""
    return Document(
        article_id=number,
        version_id=number,
        slug=article.slug,
        title=article.title,
        vectors=np.asarray(embed(text.texts_to_embed(article.title, article.problem))),
        terms=text.lexical_document(article.title, article.problem, article.tags),
    )


def build_index(articles: Sequence[SeedArticle], encoder: CachedEncoder) -> SearchIndex:
    return SearchIndex([document_for(n, article) for n, article in enumerate(articles, 1)], encoder)


# --- evaluation data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    text: str
    slug: str


def load_questions(path: Path, known_slugs: set[str]) -> tuple[list[Question], list[dict[str, str]]]:
    """The questions whose slug exists, and those whose slug does not (a typo in the set, reported)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SystemExit(f"{path}: expected a mapping with a 'questions' list of {{q, slug}}")
    questions, unknown = [], []
    for entry in entries:
        question = Question(text=str(entry["q"]), slug=str(entry["slug"]))
        if question.slug in known_slugs:
            questions.append(question)
        else:
            unknown.append({"q": question.text, "slug": question.slug})
    return questions, unknown


def load_bitext(path: Path) -> list[tuple[str, str]]:
    """(utterance, intent) pairs; the file has a byte-order mark and quoted multi-line fields."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [(row["utterance"], row["intent"]) for row in csv.DictReader(handle)]


def load_intent_map(path: Path) -> dict[str, list[str] | None]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    intents = data.get("intents") if isinstance(data, dict) else None
    if not isinstance(intents, dict):
        raise SystemExit(f"{path}: expected a mapping with an 'intents' mapping of intent -> [slug, ...]")
    return {
        str(name): (None if slugs is None else [str(slug) for slug in slugs])
        for name, slugs in intents.items()
    }


# --- scoring ------------------------------------------------------------------------------------------


def rank_of(slug: str, hits: Sequence[Hit]) -> int | None:
    """1-based position of the article in the hits, None when absent."""
    return next((position for position, hit in enumerate(hits, 1) if hit.slug == slug), None)


def band_outcome(hits: list[Hit], accepted: Sequence[str], answer_score: float, suggest_score: float) -> str:
    """What the customer gets, judged against the accepted articles: one of OUTCOMES."""
    decision = answers.decide(hits, answer_score, suggest_score)
    if decision.band == "none":
        return "no_answer"
    if decision.band == "answer":
        return "answer_right" if decision.hits[0].slug in accepted else "answer_wrong"
    right = any(hit.slug in accepted for hit in decision.hits)
    return "choice_with_right" if right else "choice_without_right"


def shares(counts: Counter[str], total: int, names: Sequence[str]) -> dict[str, float]:
    return {name: round(counts[name] / total, 4) if total else 0.0 for name in names}


def evaluate_mode(search_index: SearchIndex, questions: Sequence[Question], mode: Mode) -> dict[str, Any]:
    """Recall@1/@3/@10 and MRR over the top MRR_DEPTH; each question's full ranking is computed
    so a miss can say how far down the right article was."""
    ranks: list[int | None] = []
    for question in questions:
        hits = search_index.search(answers.query_from(question.text), k=len(search_index), mode=mode)
        ranks.append(rank_of(question.slug, hits))
    total = len(questions)

    def recall(depth: int) -> float:
        return round(sum(1 for rank in ranks if rank is not None and rank <= depth) / total, 4)

    reciprocal = [1 / rank if rank is not None and rank <= MRR_DEPTH else 0.0 for rank in ranks]
    return {
        "questions": total,
        "recall_at_1": recall(1),
        "recall_at_3": recall(3),
        "recall_at_10": recall(10),
        "mrr_at_10": round(sum(reciprocal) / total, 4),
        "ranks": ranks,
    }


def evaluate_hybrid_details(
    search_index: SearchIndex, questions: Sequence[Question], answer_score: float, suggest_score: float
) -> dict[str, Any]:
    """Band split, per-article recall@1 and the misses of the hybrid search the assistant uses."""
    outcomes: Counter[str] = Counter()
    by_slug: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses = []
    for question in questions:
        query = answers.query_from(question.text)
        hits = search_index.search(query, k=len(search_index), mode="hybrid")
        outcomes[band_outcome(hits[:ANSWER_K], [question.slug], answer_score, suggest_score)] += 1
        rank = rank_of(question.slug, hits)
        by_slug[question.slug][1] += 1
        if rank == 1:
            by_slug[question.slug][0] += 1
            continue
        expected = hits[rank - 1] if rank else None
        misses.append(
            {
                "q": question.text,
                "expected": question.slug,
                "got": hits[0].slug,
                "expected_rank": rank,
                "got_score": round(hits[0].score, 4),
                "expected_score": round(expected.score, 4) if expected else None,
                "gap": round(hits[0].score - expected.score, 4) if expected else None,
            }
        )
    # Worst first: the right article furthest down, then the widest score gap.
    misses.sort(key=lambda miss: (miss["expected_rank"] or 10**6, miss["gap"] or 0.0), reverse=True)
    return {
        "bands": shares(outcomes, len(questions), OUTCOMES),
        "band_counts": {name: outcomes[name] for name in OUTCOMES},
        "recall_at_1_by_slug": {
            slug: round(right / total, 4) for slug, (right, total) in sorted(by_slug.items())
        },
        "misses": misses,
    }


def evaluate_questions(
    search_index: SearchIndex,
    encoder: CachedEncoder,
    questions: Sequence[Question],
    answer_score: float,
    suggest_score: float,
) -> dict[str, Any]:
    encoder.prime(answers.query_from(question.text) for question in questions)
    modes = {mode: evaluate_mode(search_index, questions, mode) for mode in MODES}
    details = evaluate_hybrid_details(search_index, questions, answer_score, suggest_score)
    for result in modes.values():
        del result["ranks"]
    return {"modes": modes, **details}


def evaluate_bitext(
    search_index: SearchIndex,
    encoder: CachedEncoder,
    utterances: Sequence[tuple[str, str]],
    intent_map: dict[str, list[str] | None],
    answer_score: float,
    suggest_score: float,
) -> dict[str, Any]:
    """Per mapped intent: top hybrid article accepted / first choice / accepted in the top 3, and bands.

    Utterances of intents mapped to null have no right article: only how often the assistant answers
    them anyway is reported."""
    known = {document.slug for document in search_index.documents}
    queries = [(answers.query_from(utterance), intent) for utterance, intent in utterances]
    started = time.perf_counter()
    encoder.prime(query for query, intent in queries if intent in intent_map)
    encode_seconds = time.perf_counter() - started
    per_intent: dict[str, Counter[str]] = defaultdict(Counter)
    unmapped_bands: Counter[str] = Counter()
    started = time.perf_counter()
    searched = 0
    for query, intent in queries:
        if intent not in intent_map:
            continue
        hits = search_index.search(query, k=ANSWER_K, mode="hybrid")
        searched += 1
        accepted = intent_map[intent]
        if accepted is None:
            unmapped_bands[answers.decide(hits, answer_score, suggest_score).band] += 1
            continue
        counts = per_intent[intent]
        counts["utterances"] += 1
        counts["top_accepted"] += hits[0].slug in accepted
        counts["top_first_slug"] += hits[0].slug == accepted[0]
        counts["accepted_in_top_3"] += any(hit.slug in accepted for hit in hits[:3])
        counts[band_outcome(hits, accepted, answer_score, suggest_score)] += 1
    search_seconds = time.perf_counter() - started
    intents = {name: _intent_figures(counts) for name, counts in sorted(per_intent.items())}
    overall: Counter[str] = sum(per_intent.values(), Counter())
    return {
        "utterances_total": len(utterances),
        "utterances_scored": int(overall["utterances"]),
        "overall": _intent_figures(overall),
        "macro_top_accepted": round(float(np.mean([r["top_accepted"] for r in intents.values()])), 4)
        if intents
        else None,
        "intents": intents,
        "null_intents": {
            "utterances": sum(unmapped_bands.values()),
            "bands": dict(unmapped_bands),
        },
        "intents_not_in_map": sorted({intent for _, intent in utterances} - intent_map.keys()),
        "unknown_slugs_in_map": sorted(
            {slug for slugs in intent_map.values() if slugs for slug in slugs} - known
        ),
        "timing": {
            "encode_seconds": round(encode_seconds, 2),
            "search_seconds": round(search_seconds, 2),
            "searches_per_second": round(searched / search_seconds, 1) if search_seconds else None,
        },
    }


def _intent_figures(counts: Counter[str]) -> dict[str, Any]:
    total = counts["utterances"]
    figures: dict[str, Any] = {"utterances": int(total)}
    for name in ("top_accepted", "top_first_slug", "accepted_in_top_3"):
        figures[name] = round(counts[name] / total, 4) if total else 0.0
    figures["bands"] = shares(counts, total, OUTCOMES)
    return figures


# --- report -------------------------------------------------------------------------------------------


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    hybrid = results["questions"]["modes"]["hybrid"]
    return [
        {
            "name": f"hybrid {name.replace('_at_', '@')} ({hybrid['questions']} questions)",
            "target": f">= {target:.2f}",
            "value": f"{hybrid[name]:.3f}",
            "pass": hybrid[name] >= target,
        }
        for name, target in (("recall_at_1", TARGET_RECALL_AT_1), ("recall_at_3", TARGET_RECALL_AT_3))
    ]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _clip(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def print_questions(results: dict[str, Any]) -> None:
    questions = results["questions"]
    config = results["config"]
    print(f"Evaluation questions ({config['questions_file']}, {questions['modes']['hybrid']['questions']})")
    header = f"  {'mode':<9}{'recall@1':>10}{'recall@3':>10}{'recall@10':>11}{'MRR@10':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for mode, figures in questions["modes"].items():
        print(
            f"  {mode:<9}{figures['recall_at_1']:>10.3f}{figures['recall_at_3']:>10.3f}"
            f"{figures['recall_at_10']:>11.3f}{figures['mrr_at_10']:>9.3f}"
        )
    if questions["unknown_slugs"]:
        print(f"  skipped {len(questions['unknown_slugs'])} questions whose slug is not an article")
    print()
    print(
        f"Hybrid answer bands (answer >= {config['kb_answer_score']}, "
        f"choose >= {config['kb_suggest_score']}, top {ANSWER_K})"
    )
    for name in OUTCOMES:
        print(
            f"  {name.replace('_', ' '):<22}{_pct(questions['bands'][name]):>7}"
            f"  ({questions['band_counts'][name]})"
        )
    print()
    misses = questions["misses"][:WORST_MISSES]
    print(f"Worst hybrid misses ({len(misses)} of {len(questions['misses'])}; rank of the expected article)")
    for miss in misses:
        rank = miss["expected_rank"] or "-"
        print(
            f"  {_clip(miss['q'], 62):<62}  {miss['expected']:<26} got {miss['got']:<26}"
            f" #{rank} {miss['got_score']:.3f}/{miss['expected_score'] or 0:.3f}"
        )


def print_bitext(bitext: dict[str, Any]) -> None:
    print(
        f"Bitext customer-service utterances: {bitext['utterances_scored']} scored of "
        f"{bitext['utterances_total']} (hybrid, top article)"
    )
    header = (
        f"  {'intent':<26}{'n':>5}{'top ok':>9}{'1st slug':>10}{'ok@3':>8}"
        f"{'ans ok':>8}{'ans bad':>8}{'ch ok':>7}{'ch bad':>8}{'none':>7}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    rows = [*bitext["intents"].items(), ("OVERALL", bitext["overall"])]
    for name, figures in rows:
        bands = figures["bands"]
        print(
            f"  {name:<26}{figures['utterances']:>5}{_pct(figures['top_accepted']):>9}"
            f"{_pct(figures['top_first_slug']):>10}{_pct(figures['accepted_in_top_3']):>8}"
            + "".join(
                f"{_pct(bands[outcome]):>{width}}"
                for outcome, width in zip(OUTCOMES, (8, 8, 7, 8, 7), strict=True)
            )
        )
    print(f"  macro average of 'top ok' over intents: {_pct(bitext['macro_top_accepted'])}")
    null = bitext["null_intents"]
    if null["utterances"]:
        print(f"  intents mapped to null ({null['utterances']} utterances), bands: {null['bands']}")
    if bitext["intents_not_in_map"]:
        print(f"  intents not in the map (skipped): {', '.join(bitext['intents_not_in_map'])}")
    if bitext["unknown_slugs_in_map"]:
        print(f"  slugs in the map that are not articles: {', '.join(bitext['unknown_slugs_in_map'])}")
    timing = bitext["timing"]
    print(
        f"  encoding all utterances in one batch: {timing['encode_seconds']} s; "
        f"hybrid search: {timing['searches_per_second']} searches/s"
    )


def evaluate_unanswerable(
    search_index: SearchIndex, questions: Sequence[str], answer_score: float, suggest_score: float
) -> dict[str, Any]:
    """Shop questions no article answers: how often the assistant admits it (the "none" band) rather
    than answering with a wrong article or offering a choice."""
    bands = Counter(
        answers.decide(search_index.search(question, k=ANSWER_K), answer_score, suggest_score).band
        for question in questions
    )
    total = len(questions)
    return {
        "questions": total,
        "no_answer": round(bands["none"] / total, 4),
        "offered_choice": round(bands["choose"] / total, 4),
        "answered_anyway": round(bands["answer"] / total, 4),
    }


def print_report(results: dict[str, Any]) -> None:
    machine, config = results["machine"], results["config"]
    print()
    print(
        f"Kefu knowledge-base retrieval  {machine['timestamp']}  {config['articles']} articles, "
        f"{config['model']}, hybrid = dense + {config['lexical_weight']} * bm25/(bm25 + "
        f"{config['lexical_saturation']})"
    )
    print()
    print_questions(results)
    if results.get("bitext"):
        print()
        print_bitext(results["bitext"])
    if results.get("unanswerable"):
        u = results["unanswerable"]
        print()
        print(
            f"Unanswerable shop questions ({u['questions']}): no answer {_pct(u['no_answer'])}, "
            f"offered a choice {_pct(u['offered_choice'])}, answered anyway {_pct(u['answered_anyway'])}"
        )
    print()
    print("Targets")
    for target in results["targets"]:
        verdict = "PASS" if target["pass"] else "FAIL"
        print(f"  {target['name']:<36}  {target['target']:>7}  {target['value']:>6}  {verdict}")


# --- main ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    began = time.monotonic()
    print("Loading the encoder and embedding the seed articles ...", flush=True)
    articles = seeds.read_seed_files()
    encoder = CachedEncoder()
    started = time.monotonic()
    search_index = build_index(articles, encoder)
    build_seconds = time.monotonic() - started
    known = {article.slug for article in articles}
    questions, unknown = load_questions(args.questions, known)
    if not questions:
        raise SystemExit(f"{args.questions}: no question names a known article")
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "articles": len(articles),
            "vectors": int(search_index.nbytes // (4 * embedding.DIMENSIONS)),
            "model": embedding.MODEL_NAME,
            "lexical_weight": index.LEXICAL_WEIGHT,
            "lexical_saturation": index.LEXICAL_SATURATION,
            "kb_answer_score": settings.kb_answer_score,
            "kb_suggest_score": settings.kb_suggest_score,
            "answer_k": ANSWER_K,
            "mrr_depth": MRR_DEPTH,
            "questions_file": str(args.questions),
            "bitext_file": None if args.no_bitext else str(args.bitext),
            "bitext_map_file": None if args.no_bitext else str(args.map),
            "index_build_seconds_with_model_load": round(build_seconds, 1),
        },
    }
    print(f"Evaluating {len(questions)} questions in three modes ...", flush=True)
    results["questions"] = evaluate_questions(
        search_index, encoder, questions, settings.kb_answer_score, settings.kb_suggest_score
    )
    results["questions"]["unknown_slugs"] = unknown
    if not args.no_bitext:
        utterances = load_bitext(args.bitext)
        print(f"Encoding and searching {len(utterances)} Bitext utterances ...", flush=True)
        results["bitext"] = evaluate_bitext(
            search_index,
            encoder,
            utterances,
            load_intent_map(args.map),
            settings.kb_answer_score,
            settings.kb_suggest_score,
        )
    if args.unanswerable.exists():
        unanswerable = yaml.safe_load(args.unanswerable.read_text(encoding="utf-8"))["questions"]
        results["unanswerable"] = evaluate_unanswerable(
            search_index, unanswerable, settings.kb_answer_score, settings.kb_suggest_score
        )
    results["targets"] = evaluate_targets(results)
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kb_retrieval", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--questions", type=Path, default=QUESTIONS_PATH, help="questions: [{q, slug}]")
    parser.add_argument("--bitext", type=Path, default=BITEXT_PATH, help="Bitext CSV (utterance, intent)")
    parser.add_argument("--map", type=Path, default=BITEXT_MAP_PATH, help="intents: {intent: [slug, ...]}")
    parser.add_argument("--no-bitext", action="store_true", help="skip the Bitext evaluation")
    parser.add_argument(
        "--unanswerable", type=Path, default=UNANSWERABLE_PATH, help="questions: [text] no article answers"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    results = run(args)
    print_report(results)
    save_results(args.output, results)
    print(f"\nResults: {args.output}   (wall time {results['wall_seconds']} s)")
    failed = [target for target in results["targets"] if not target["pass"]]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
