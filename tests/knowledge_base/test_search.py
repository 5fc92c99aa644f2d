"""The search engine on a five-article fixture: meaning, exact terms, bands and odd queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base import answers, embedding, seeds, text
from knowledge_base.index import Document, Hit, SearchIndex

FIXTURE = Path(__file__).parent / "fixtures" / "mini.yml"


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    documents = [
        Document(
            article_id=number,
            version_id=number,
            slug=article.slug,
            title=article.title,
            vectors=embedding.encode(text.texts_to_embed(article.title, article.problem)),
            terms=text.lexical_document(article.title, article.problem, article.tags, article.solution),
        )
        for number, article in enumerate(seeds.read_seed_files(FIXTURE), start=1)
    ]
    return SearchIndex(documents, embedding.encode)


@pytest.mark.parametrize(
    ("question", "slug"),
    [
        ("where the hell is my stuff, ordered ages ago", "parcel-late"),
        ("i returnd the jacket, when do i see the cash again??", "money-back"),
        ("cant sign in, dont remember my pasword", "reset-password"),
        ("how to get the bbq clean after use", "grill-cleaning"),
    ],
)
def test_a_question_in_other_words_finds_its_article(index: SearchIndex, question: str, slug: str) -> None:
    assert index.search(question, k=3)[0].slug == slug


def test_an_exact_error_code_is_found_by_its_words(index: SearchIndex) -> None:
    hits = index.search("what does E4711 mean", k=5)

    assert hits[0].slug == "error-e4711"
    assert hits[0].lexical > 0
    assert all(hit.lexical == 0 for hit in hits[1:])


def test_the_three_modes_score_differently(index: SearchIndex) -> None:
    question = "error E4711 at checkout"
    dense, lexical, hybrid = (
        index.search(question, k=5, mode=mode)[0] for mode in ("dense", "lexical", "hybrid")
    )

    assert lexical.dense == 0 and lexical.score == lexical.lexical
    assert dense.lexical == 0 and dense.score == dense.dense
    assert hybrid.score == pytest.approx(hybrid.dense + 0.25 * hybrid.lexical)


def test_hits_come_best_first_and_at_most_k(index: SearchIndex) -> None:
    hits = index.search("refund", k=3)

    assert len(hits) == 3
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert len(index.search("refund", k=50)) == 5


def test_an_empty_question_or_index_finds_nothing(index: SearchIndex) -> None:
    assert index.search("   ") == []
    assert SearchIndex([], embedding.encode).search("refund") == []


def test_unrelated_and_foreign_questions_score_below_the_suggestion_band(index: SearchIndex) -> None:
    for question in ("what's the capital of australia", "Wie spät ist es in Tokio?", "asdf qwer zxcv"):
        decision = answers.decide(index.search(question), answer_score=0.62, suggest_score=0.45)
        assert decision.band == "none", question


def hit(slug: str, score: float) -> Hit:
    return Hit(article_id=1, version_id=1, slug=slug, title=slug, score=score, dense=score, lexical=0.0)


def test_bands_answer_choose_and_nothing() -> None:
    assert answers.decide([hit("a", 0.8), hit("b", 0.5)], 0.62, 0.45).band == "answer"
    chosen = answers.decide([hit("a", 0.6), hit("b", 0.5), hit("c", 0.47), hit("d", 0.46)], 0.62, 0.45)
    assert chosen.band == "choose" and [h.slug for h in chosen.hits] == ["a", "b", "c"]
    assert answers.decide([hit("a", 0.3)], 0.62, 0.45).band == "none"
    assert answers.decide([], 0.62, 0.45).band == "none"


def test_two_articles_almost_tied_are_offered_as_a_choice() -> None:
    decision = answers.decide([hit("a", 0.70), hit("b", 0.68)], 0.62, 0.45)

    assert decision.band == "choose" and [h.slug for h in decision.hits] == ["a", "b"]


def test_queries_are_one_line_and_capped() -> None:
    assert answers.query_from("  where\n\nis   it ") == "where is it"
    assert len(answers.query_from("x" * 5000)) == answers.MAX_QUERY_CHARS
    assert not answers.has_words("?? 123 !!")
    assert answers.has_words("refund?")


@pytest.mark.parametrize(
    ("typed", "index"),
    [("the first one", 0), ("2nd please", 1), ("number 3", 2), ("the last one", 2), ("hmm", None)],
)
def test_typed_choices_pick_the_offered_article(typed: str, index: int | None) -> None:
    assert answers.ordinal_choice(typed, 3) == index


def test_terms_drop_filler_and_stem() -> None:
    assert text.terms("Please, I need help with my refunds!") == ["refund"]
