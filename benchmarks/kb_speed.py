"""Speed and memory of the knowledge-base search at 100, 10,000 and 100,000 articles.

`make bench-kb` runs it with --quick; by hand: `.venv/bin/python -m benchmarks.kb_speed` (--sizes 100,10000,
100000 by default; --quick for 100,1000,10000). For each size it reports the query latency (encoding the
question + SearchIndex.search, single queries after a warm-up), the build rate (embedding and BM25), and the
memory of the index. Results go to benchmarks/results/kb_speed.json.

Beyond the 92 real articles the corpora are generated: each article varies a real one (its title and
problem lines recombined with lines of other articles on the same topic, words swapped for synonyms,
products and numbers substituted, some tied to a product with a model code), so BM25 vocabularies and
the vector matrix grow the way a real catalogue's would. Every generated article goes through the
real path (text.texts_to_embed + embedding.encode, text.lexical_document, SearchIndex), and the
corpora are prefixes of one sequence, so a larger size only embeds the articles a smaller one lacks.

Embedding is the slow part (~200 texts/s on two cores, ~7 texts per article: 100,000 articles take about
an hour). --max-texts N embeds only the first N texts of each generated article from position
--max-texts-from on (default 10,000, so smaller corpora stay fully embedded); the rows of the texts
left out repeat the article's embedded vectors, so the matrix keeps the full corpus's shape and the
dense scoring costs what it would (the cost of a matrix-vector product does not depend on the values).
The copies are real encoder output, never random numbers, but they add nothing to the meaning: that
mode is for latency and memory, not for retrieval quality. --fill none keeps only the embedded rows.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.kb_retrieval import QUESTIONS_PATH, load_questions
from benchmarks.latency import machine_info
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT
from knowledge_base import answers, embedding, seeds, text
from knowledge_base.index import Document, SearchIndex
from knowledge_base.seeds import SeedArticle

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "kb_speed.json"
SIZES = (100, 10_000, 100_000)
QUICK_SIZES = (100, 1_000, 10_000)
QUERIES = 300
WARM_UP_QUERIES = 20
SEARCH_K = 5  # what actions/knowledge.py asks for
# Articles embedded per encode() call: big enough for full batches, small enough to report progress.
EMBED_CHUNK = 250
SEED = 20261123
# Share of a generated article's problem lines taken from the real article it varies.
OWN_LINE_SHARE = 0.6

TARGETS_P95_MS = {10_000: 20.0, 100_000: 50.0}

Fill = Literal["repeat", "none"]


# --- synthetic articles -------------------------------------------------------------------------------

# Words customers and writers use interchangeably; one is picked per occurrence.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "order": ("order", "purchase", "order"),
    "parcel": ("parcel", "package", "shipment"),
    "e-mail": ("e-mail", "email", "mail"),
    "account": ("account", "online account"),
    "item": ("item", "product", "article"),
    "money": ("money", "cash", "payment"),
    "refund": ("refund", "reimbursement", "money back"),
    "voucher": ("voucher", "coupon", "discount code", "promo code"),
    "invoice": ("invoice", "receipt", "bill"),
    "broken": ("broken", "damaged", "faulty", "cracked"),
    "late": ("late", "delayed", "overdue"),
    "change": ("change", "update", "modify", "edit"),
    "cancel": ("cancel", "call off", "stop"),
    "box": ("box", "carton", "packaging"),
    "delivery": ("delivery", "shipping", "dispatch"),
    "website": ("website", "site", "web shop", "app"),
    "problem": ("problem", "issue", "trouble"),
    "quickly": ("quickly", "fast", "soon"),
    "arrived": ("arrived", "came", "was delivered"),
}
BRANDS = (
    "Kettleforge", "Ridgeway", "Heathermoor", "Alderbrook", "Fjellstad", "Sunmoor", "Brackenfield",
    "Larchwood", "Stonecrop", "Emberline", "Willowmere", "Tidewater", "Highcrag", "Mossgrove", "Oakhollow",
    "Cinderpeak", "Northwind", "Saltmarsh", "Thistledown", "Ravenscar", "Coppergate", "Driftwood",
    "Fernhill", "Glenmore", "Hollowbrook", "Ironbark", "Juniper", "Kestrel", "Lakeshore", "Meadowlark",
)  # fmt: skip
PRODUCTS = (
    "grill", "tent", "wool throw", "solar lantern", "expandable hose", "fire pit", "hammock",
    "sleeping bag", "camping stove", "parasol", "sun lounger", "picnic basket", "bird feeder",
    "garden bench", "raised bed", "rain barrel", "pizza oven", "camping chair", "cool box", "head torch",
    "trekking poles", "rucksack", "bivvy bag", "string lights", "outdoor rug", "patio heater",
    "water bottle", "cast iron pan", "folding table", "windbreak", "garden kneeler", "pruning shears",
    "compost bin", "planter", "log store", "seat cushions", "grill cover", "awning", "gazebo",
    "storage box",
)  # fmt: skip
# The real articles' own product words, replaced by a generated product now and then.
PRODUCT_WORDS = re.compile(r"\b(grill|tent|lantern|hose|fire pit|wool throw|hammock|chair|item)\b")
NUMBER = re.compile(r"\b\d+\b")
EXTRA_LINES = (
    "I ordered the {product} on {day} {month}",
    "my order number is {number}",
    "it's about the {product} I bought {days} days ago",
    "the {product} ({code}) was a gift for my {relative}",
    "this is the second time with a {brand} product",
    "I paid {price} EUR for it",
)
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
RELATIVES = ("mum", "dad", "sister", "brother", "partner", "neighbour", "friend", "colleague")


@dataclass(frozen=True)
class Product:
    brand: str
    kind: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.brand} {self.kind}"


def new_product(rng: random.Random) -> Product:
    """A product with a model code: codes give a large catalogue most of its distinct BM25 terms."""
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXZ") for _ in range(2))
    return Product(rng.choice(BRANDS), rng.choice(PRODUCTS), f"{letters}-{rng.randint(100, 9999)}")


def substitute(sentence: str, rng: random.Random, product: Product, product_share: float) -> str:
    """The sentence with synonyms swapped, numbers changed and (sometimes) the product named."""

    def synonym(match: re.Match[str]) -> str:
        return rng.choice(SYNONYMS[match.group(0).lower()])

    sentence = _SYNONYM_WORDS.sub(synonym, sentence)
    sentence = NUMBER.sub(
        lambda match: str(rng.randint(1, 60) if len(match.group(0)) < 3 else rng.randint(100, 99999)),
        sentence,
    )
    if rng.random() < product_share:
        sentence = PRODUCT_WORDS.sub(product.name, sentence, count=1)
    return sentence


_SYNONYM_WORDS = re.compile(r"\b(" + "|".join(re.escape(word) for word in SYNONYMS) + r")\b", re.IGNORECASE)


def extra_line(rng: random.Random, product: Product) -> str:
    return rng.choice(EXTRA_LINES).format(
        product=product.name,
        code=product.code,
        brand=product.brand,
        day=rng.randint(1, 28),
        month=rng.choice(MONTHS),
        number=rng.randint(100000, 999999),
        days=rng.randint(2, 40),
        relative=rng.choice(RELATIVES),
        price=rng.randint(9, 899),
    )


@dataclass
class Generator:
    """Articles varied from the real ones, reproducible by position (article i is always the same)."""

    real: Sequence[SeedArticle]
    _lines_by_topic: dict[str, list[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lines_by_topic = defaultdict(list)
        for article in self.real:
            self._lines_by_topic[article.source].extend(text.problem_lines(article.problem))

    def article(self, position: int) -> SeedArticle:
        """The corpus's article at `position`: the real ones first, then generated ones."""
        if position < len(self.real):
            return self.real[position]
        rng = random.Random(f"{SEED}-{position}")
        base = self.real[position % len(self.real)]
        product = new_product(rng)
        specific = rng.random() < 0.6  # most articles of a big catalogue are about one product
        share = 0.7 if specific else 0.1
        title = substitute(base.title, rng, product, share)
        if specific:
            title = f"{title.rstrip('?.')} ({product.name} {product.code})"
        # As many lines as the real article has, most of them its own, the rest from the same topic.
        own = text.problem_lines(base.problem)
        others = [line for line in self._lines_by_topic[base.source] if line not in own]
        kept = max(1, round(OWN_LINE_SHARE * len(own)))
        picked = rng.sample(own, kept) + rng.sample(others, min(len(others), len(own) - kept))
        lines = [substitute(line, rng, product, share) for line in picked]
        if specific:
            lines[rng.randrange(len(lines))] = extra_line(rng, product)
        rng.shuffle(lines)
        tags = [*base.tags, product.kind.replace(" ", "-")] + ([product.brand.lower()] if specific else [])
        return SeedArticle(
            slug=f"{base.slug}-{position}",
            title=title,
            problem="\n".join(lines),
            solution=base.solution,
            tags=tags,
            source=base.source,
        )


# --- building the corpus ------------------------------------------------------------------------------


@dataclass
class Corpus:
    """Documents embedded so far, and how long embedding and term extraction took.

    Figures are kept per step (since the last `start_step`) so each size reports its own build rate.
    """

    generator: Generator
    max_texts: int | None = None
    max_texts_from: int = 10_000
    fill: Fill = "repeat"
    cache: Path | None = None
    documents: list[Document] = field(default_factory=list)
    step: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)

    def grow(self, size: int) -> None:
        """Embed articles until there are `size`, reporting progress every ~10%."""
        start = len(self.documents)
        self.step = Counter()
        next_report = 0.1
        while len(self.documents) < size:
            # Chunks start at multiples of EMBED_CHUNK, so runs with other sizes reuse the cache.
            end = min(size, (len(self.documents) // EMBED_CHUNK + 1) * EMBED_CHUNK)
            self._add(range(len(self.documents), end))
            done = (len(self.documents) - start) / (size - start)
            if done >= next_report or len(self.documents) == size:
                self._report(start, size)
                next_report = (int(done * 10) + 1) / 10

    def _add(self, positions: range) -> None:
        articles = [self.generator.article(position) for position in positions]
        started = time.perf_counter()
        all_texts = [text.texts_to_embed(article.title, article.problem) for article in articles]
        chosen = [
            self.texts_for(position, texts) for position, texts in zip(positions, all_texts, strict=True)
        ]
        vectors, cached = self._encode(positions, [item for texts in chosen for item in texts])
        embed_seconds = 0.0 if cached else time.perf_counter() - started
        started = time.perf_counter()
        terms = [text.lexical_document(article.title, article.problem, article.tags) for article in articles]
        lexical_seconds = time.perf_counter() - started
        limited = sum(1 for texts, picked in zip(all_texts, chosen, strict=True) if len(picked) < len(texts))
        self._count(
            articles=len(articles),
            limited_articles=limited,
            cached_articles=len(articles) if cached else 0,
            texts_chosen=sum(len(picked) for picked in chosen),
            texts_encoded=0 if cached else sum(len(picked) for picked in chosen),
            texts_all=sum(len(texts) for texts in all_texts),
            embed_us=round(embed_seconds * 1e6),
            lexical_us=round(lexical_seconds * 1e6),
            # Chunks with every text embedded give the rate a real catalogue would be built at.
            full_articles=0 if limited or cached else len(articles),
            full_embed_us=0 if limited or cached else round(embed_seconds * 1e6),
        )
        offset = 0
        for position, article, texts, picked, article_terms in zip(
            positions, articles, all_texts, chosen, terms, strict=True
        ):
            rows = self._rows(vectors[offset : offset + len(picked)], len(texts))
            offset += len(picked)
            self.documents.append(
                Document(position, position, article.slug, article.title, rows, article_terms)
            )

    def _encode(self, positions: range, texts: list[str]) -> tuple[np.ndarray, bool]:
        """The texts' vectors, and whether they came from --cache (keyed by the texts themselves, so
        a changed article or generator is embedded again)."""
        if self.cache is None:
            return embedding.encode(texts), False
        key = hashlib.sha1("\0".join([embedding.MODEL_NAME, *texts]).encode()).hexdigest()[:20]
        path = self.cache / f"{positions.start}-{positions.stop}-{key}.npy"
        if path.exists():
            return np.load(path), True
        vectors = embedding.encode(texts)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors, False

    def _count(self, **figures: int) -> None:
        self.step.update(figures)
        self.total.update(figures)

    def texts_for(self, position: int, texts: list[str]) -> list[str]:
        """The texts of the article at `position` that get embedded: all of them, or with --max-texts the
        title and the first problem lines. The first text (title + whole problem, ~140 tokens against
        ~12 for the others) is the one left out: alone it costs ~40% of an article's embedding."""
        generated = position >= max(self.max_texts_from, len(self.generator.real))
        if not self.max_texts or not generated or self.max_texts >= len(texts):
            return texts
        return texts[1 : 1 + self.max_texts]

    def _rows(self, own: np.ndarray, count: int) -> np.ndarray:
        """The article's index rows: its embedded vectors, repeated up to `count` rows with --fill repeat."""
        if self.fill == "none" or len(own) == count:
            return own
        return own[np.arange(count) % len(own)]

    def _report(self, start: int, size: int) -> None:
        done, figures = len(self.documents), build_figures(self.step)
        rate = figures["embed_articles_per_s"]
        remaining = f"~{(size - done) / rate / 60:.1f} min left" if rate else "from the cache"
        print(
            f"  embedded {done:,}/{size:,} articles "
            f"({100 * (done - start) / (size - start):.0f}% of this step), {rate or '-'} articles/s, "
            f"{figures['embed_texts_per_s'] or '-'} texts/s, {remaining}",
            flush=True,
        )


def build_figures(counts: Counter[str]) -> dict[str, Any]:
    """Embedding and term-extraction figures of a step (or of the whole corpus); the embedding rate
    counts only the articles encoded in this run, not those read from --cache."""
    articles, embed_seconds = counts["articles"], counts["embed_us"] / 1e6
    encoded = articles - counts["cached_articles"]
    return {
        "articles": articles,
        "articles_with_limited_texts": counts["limited_articles"],
        "articles_from_cache": counts["cached_articles"],
        "texts_per_article": round(counts["texts_all"] / articles, 2) if articles else None,
        "texts_embedded": counts["texts_chosen"],
        "texts_encoded_in_this_run": counts["texts_encoded"],
        "embed_seconds": round(embed_seconds, 1),
        "embed_articles_per_s": round(encoded / embed_seconds, 1) if embed_seconds else None,
        "embed_texts_per_s": round(counts["texts_encoded"] / embed_seconds, 1) if embed_seconds else None,
        "lexical_terms_seconds": round(counts["lexical_us"] / 1e6, 2),
    }


# --- measuring ----------------------------------------------------------------------------------------


def rss_kb(key: str = "VmRSS") -> int:
    """Resident memory of this process (VmRSS) or its peak (VmHWM), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


class TimedEncoder:
    """embedding.encode, remembering how long the last call took: search() = encoding + scoring."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self._encode = encode or embedding.encode
        self.last_seconds = 0.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = self._encode(texts)
        self.last_seconds = time.perf_counter() - started
        return vectors


def _ms(values: Sequence[float], share: float) -> float:
    return round(1000 * float(np.percentile(np.asarray(values), 100 * share)), 2)


def measure_latency(index: SearchIndex, encoder: TimedEncoder, queries: Sequence[str]) -> dict[str, Any]:
    """Single-query latency of index.search, split into encoding and scoring (BM25 + dense + top k);
    then the dense and BM25 scoring alone, to show which of the two grows with the corpus."""
    for query in queries[:WARM_UP_QUERIES]:
        index.search(query, k=SEARCH_K)
    totals, encodes = [], []
    for query in queries:
        started = time.perf_counter()
        index.search(query, k=SEARCH_K)
        totals.append(time.perf_counter() - started)
        encodes.append(encoder.last_seconds)
    scoring = [total - encode for total, encode in zip(totals, encodes, strict=True)]
    dense, lexical = [], []
    for query in queries:
        vector = encoder([query])[0]
        started = time.perf_counter()
        index.dense_scores(vector)
        dense.append(time.perf_counter() - started)
        started = time.perf_counter()
        index.lexical_scores(text.terms(query))
        lexical.append(time.perf_counter() - started)
    return {
        "queries": len(queries),
        "p50_ms": _ms(totals, 0.5),
        "p95_ms": _ms(totals, 0.95),
        "p99_ms": _ms(totals, 0.99),
        "mean_ms": round(1000 * statistics.fmean(totals), 2),
        "encode_p50_ms": _ms(encodes, 0.5),
        "encode_p95_ms": _ms(encodes, 0.95),
        "scoring_p50_ms": _ms(scoring, 0.5),
        "scoring_p95_ms": _ms(scoring, 0.95),
        "dense_scores_p50_ms": _ms(dense, 0.5),
        "lexical_scores_p50_ms": _ms(lexical, 0.5),
    }


def measure_size(corpus: Corpus, size: int, queries: Sequence[str], rss_start_kb: int) -> dict[str, Any]:
    """Grow the corpus to `size`, build the index over it, time queries; the index is dropped after."""
    corpus.grow(size)
    documents = corpus.documents[:size]
    gc.collect()
    rss_before = rss_kb()
    encoder = TimedEncoder()
    started = time.perf_counter()
    index = SearchIndex(documents, encoder)
    index_seconds = time.perf_counter() - started
    gc.collect()
    rss_after = rss_kb()
    print(f"  index over {size:,} articles built in {index_seconds:.1f} s; timing {len(queries)} queries ...")
    load_before = os.getloadavg()[0]
    latency = measure_latency(index, encoder, queries)
    latency["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    rows = index.nbytes // (4 * embedding.DIMENSIONS)
    whole = build_figures(corpus.total)
    bm25_seconds = index_seconds + whole["lexical_terms_seconds"]
    result = {
        "articles": size,
        "vectors": int(rows),
        "vectors_per_article": round(rows / size, 2),
        "embedded_texts_per_article": round(whole["texts_embedded"] / size, 2),
        "vocabulary_terms": len({term for document in documents for term in document.terms}),
        "terms_per_article": round(statistics.fmean(len(document.terms) for document in documents), 1),
        "latency": latency,
        "build": {
            "this_step": build_figures(corpus.step),
            "whole_corpus": whole,
            "index_seconds": round(index_seconds, 2),
            "bm25_articles_per_s": round(size / bm25_seconds, 1),
        },
        "memory": {
            "matrix_bytes": index.nbytes,
            "matrix_mb": round(index.nbytes / 2**20, 1),
            "index_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
            "rss_growth_since_start_mb": round((rss_after - rss_start_kb) / 1024, 1),
            "rss_mb": round(rss_after / 1024, 1),
            "peak_rss_mb": round(rss_kb("VmHWM") / 1024, 1),
        },
    }
    del index, documents
    gc.collect()
    return result


def benchmark_queries(path: Path, known_slugs: set[str], count: int) -> list[str]:
    """`count` real customer questions (cycled if the set is smaller), as the assistant queries them."""
    questions, _ = load_questions(path, known_slugs)
    texts = [answers.query_from(question.text) for question in questions]
    if not texts:
        raise SystemExit(f"{path}: no questions")
    return [texts[i % len(texts)] for i in range(count)]


# --- report -------------------------------------------------------------------------------------------


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    by_size = {entry["articles"]: entry for entry in results["sizes"]}
    return [
        {
            "name": f"p95 search latency, {size:,} articles",
            "target": f"<= {target:.0f} ms",
            "value": f"{by_size[size]['latency']['p95_ms']} ms",
            "pass": by_size[size]["latency"]["p95_ms"] <= target,
        }
        for size, target in TARGETS_P95_MS.items()
        if size in by_size
    ]


def projection(corpus: Corpus, articles: int) -> dict[str, Any] | None:
    """How long embedding `articles` with all their texts would take, at the rate measured on the chunks
    whose articles were all embedded in full."""
    if not corpus.total["full_articles"]:
        return None
    seconds = articles * corpus.total["full_embed_us"] / 1e6 / corpus.total["full_articles"]
    return {
        "articles": articles,
        "minutes": round(seconds / 60, 1),
        "measured_on_articles": corpus.total["full_articles"],
    }


def print_report(results: dict[str, Any]) -> None:
    machine, config = results["machine"], results["config"]
    print()
    print(
        f"Kefu knowledge-base speed  {machine['timestamp']}  {machine['nproc']} CPUs "
        f"({machine['cpu_model']}), {config['model']}, k={SEARCH_K}"
    )
    if config["max_texts"]:
        print(
            f"  generated articles from #{config['max_texts_from']:,} on: only {config['max_texts']} "
            f"short texts embedded (title + first problem lines), fill={config['fill']}"
        )
    print()
    print("Query latency (ms; one question: encode + BM25 + dense + top k) and index size")
    header = (
        f"  {'articles':>9}{'vectors':>10}{'vec/art':>8}{'terms':>9}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'enc p50':>9}{'score p50/p95':>15}{'dense/bm25':>12}{'matrix MB':>11}{'index MB':>10}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for entry in results["sizes"]:
        latency, memory = entry["latency"], entry["memory"]
        score = f"{latency['scoring_p50_ms']}/{latency['scoring_p95_ms']}"
        parts = f"{latency['dense_scores_p50_ms']}/{latency['lexical_scores_p50_ms']}"
        print(
            f"  {entry['articles']:>9,}{entry['vectors']:>10,}{entry['vectors_per_article']:>8}"
            f"{entry['vocabulary_terms']:>9,}{latency['p50_ms']:>8}{latency['p95_ms']:>8}{latency['p99_ms']:>8}"
            f"{latency['encode_p50_ms']:>9}{score:>15}{parts:>12}{memory['matrix_mb']:>11}"
            f"{memory['index_rss_growth_mb']:>10}"
        )
    print(
        "  (terms: distinct BM25 terms; dense/bm25: p50 of dense_scores / lexical_scores alone;\n"
        "   index MB: RSS growth while SearchIndex() was built: matrix copy + BM25)"
    )
    loads = [entry["latency"]["load_average_1min"] for entry in results["sizes"]]
    print(f"  1-min load average before/after each timing: {loads} (other work on the machine skews them)")
    print()
    print("Build (embedding: texts_to_embed + encode of the articles added for that size)")
    for entry in results["sizes"]:
        step, build = entry["build"]["this_step"], entry["build"]
        notes = [
            f"{step[name]:,} {label}"
            for name, label in (
                ("articles_with_limited_texts", "limited texts"),
                ("articles_from_cache", "cached"),
            )
            if step[name]
        ]
        limited = f" ({', '.join(notes)})" if notes else ""
        print(
            f"  {entry['articles']:>9,}: +{step['articles']:,} articles{limited}, embedding "
            f"{step['embed_articles_per_s']} articles/s ({step['embed_texts_per_s']} texts/s, "
            f"{step['embed_seconds']} s); BM25 terms + SearchIndex() "
            f"{build['bm25_articles_per_s']:,} articles/s"
        )
    if results.get("projection"):
        projected = results["projection"]
        print(
            f"  embedding {projected['articles']:,} articles with all their texts would take "
            f"~{projected['minutes']} min at the rate measured on {projected['measured_on_articles']:,}"
        )
    largest = results["sizes"][-1]
    memory = largest["memory"]
    print()
    print(
        f"Memory at {largest['articles']:,} articles: matrix {memory['matrix_mb']} MB "
        f"({largest['vectors_per_article']} vectors/article x {embedding.DIMENSIONS} float32); "
        f"SearchIndex() grew RSS by {memory['index_rss_growth_mb']} MB; documents + index since start "
        f"{memory['rss_growth_since_start_mb']} MB; RSS {memory['rss_mb']} MB "
        f"(peak {memory['peak_rss_mb']} MB)"
    )
    print()
    print("Targets")
    for target in results["targets"]:
        verdict = "PASS" if target["pass"] else "FAIL"
        print(f"  {target['name']:<38}  {target['target']:>8}  {target['value']:>10}  {verdict}")


# --- main ---------------------------------------------------------------------------------------------


def parse_sizes(value: str) -> tuple[int, ...]:
    return tuple(sorted({int(part.replace("_", "")) for part in value.split(",") if part.strip()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kb_speed", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=SIZES, help="articles per index (default 100,10000,100000)"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 100,1000,10000")
    parser.add_argument(
        "--queries", type=int, default=QUERIES, help=f"timed queries per size (default {QUERIES})"
    )
    parser.add_argument("--questions", type=Path, default=QUESTIONS_PATH, help="where the queries come from")
    parser.add_argument(
        "--max-texts",
        type=int,
        help="embed only N short texts of each generated article: the title and first problem lines "
        "(see the docstring)",
    )
    parser.add_argument(
        "--max-texts-from", type=int, default=10_000, help="article position where --max-texts starts (10000)"
    )
    parser.add_argument(
        "--fill",
        choices=("repeat", "none"),
        default="repeat",
        help="with --max-texts: repeat the embedded vectors to the full row count (default) or not",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="directory for the embedded vectors: a later run with the same articles only times the "
        "search (build rates then cover the articles not found there)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where the JSON goes")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else args.sizes

    began = time.monotonic()
    real = seeds.read_seed_files()
    queries = benchmark_queries(args.questions, {article.slug for article in real}, args.queries)
    print("Loading the encoder ...", flush=True)
    embedding.encode(["warm up"])
    corpus = Corpus(Generator(real), args.max_texts, args.max_texts_from, args.fill, args.cache)
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "sizes": list(sizes),
            "queries": len(queries),
            "warm_up_queries": WARM_UP_QUERIES,
            "k": SEARCH_K,
            "model": embedding.MODEL_NAME,
            "max_texts": args.max_texts,
            "max_texts_from": args.max_texts_from,
            "fill": args.fill,
            "cache": str(args.cache) if args.cache else None,
            "real_articles": len(real),
        },
        "sizes": [],
    }
    rss_start = rss_kb()
    for size in sizes:
        print(f"{size:,} articles:", flush=True)
        results["sizes"].append(measure_size(corpus, size, queries, rss_start))
        # Each size's figures are saved as soon as they exist: a long run stopped later keeps them.
        results["projection"] = projection(corpus, max(100_000, *sizes))
        results["targets"] = evaluate_targets(results)
        results["wall_seconds"] = round(time.monotonic() - began, 1)
        results["load_average_at_end"] = os.getloadavg()
        save_results(args.output, results)
    print_report(results)
    print(f"\nResults: {args.output}   (wall time {results['wall_seconds']} s)")
    failed = [target for target in results["targets"] if not target["pass"]]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
