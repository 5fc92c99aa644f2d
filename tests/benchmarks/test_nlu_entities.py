"""Unit tests of the entity benchmark's pure parts: the annotation parser, merging and scoring (no Rasa)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.nlu_entities import (
    TEST_SET_PATH,
    Example,
    Prediction,
    Span,
    load_examples,
    load_regexes,
    merge_predictions,
    parse_annotated,
    regex_covers,
    score,
)


def predicted(entity: str, start: int, end: int, value: str, *extractors: str) -> Prediction:
    return Prediction(entity, start, end, value, extractors or ("DIETClassifier",))


def test_parser_gives_plain_text_and_offsets_in_it() -> None:
    example = parse_annotated("my email is [jo+x@a.io](email) and the order [100777](order_number)!")
    assert example.text == "my email is jo+x@a.io and the order 100777!"
    assert example.spans == (Span("email", 12, 21, "jo+x@a.io"), Span("order_number", 36, 42, "100777"))
    for span in example.spans:
        assert example.text[span.start : span.end] == span.value


def test_parser_keeps_brackets_inside_and_around_a_span() -> None:
    example = parse_annotated("call ([(555) 123 4567](phone)) now")
    assert example.text == "call ((555) 123 4567) now"
    assert example.spans == (Span("phone", 6, 20, "(555) 123 4567"),)


def test_parser_without_annotation_is_a_negative() -> None:
    assert parse_annotated("it costs 49.99 [sale]") == Example("it costs 49.99 [sale]", ())


def test_the_shipped_test_set_parses_with_enough_of_each_kind() -> None:
    examples = load_examples(TEST_SET_PATH)
    assert len(examples) >= 200
    assert sum(1 for example in examples if not example.spans) >= 40
    for entity in ("order_number", "email", "phone", "ticket_reference"):
        assert sum(span.entity == entity for example in examples for span in example.spans) >= 40
    for example in examples:
        assert "](" not in example.text
        for span in example.spans:
            assert example.text[span.start : span.end] == span.value


def test_exact_match_is_case_insensitive_and_stripped() -> None:
    example = parse_annotated("ticket [kf-000045](ticket_reference)")
    scores = score([example], [[predicted("ticket_reference", 7, 17, " KF-000045 ")]])
    figures = scores.per_type["ticket_reference"]
    assert (figures.true_positives, figures.false_positives, figures.false_negatives) == (1, 0, 0)
    assert figures.precision == figures.recall == figures.f1 == 1.0
    assert scores.errors == []


def test_wrong_type_is_a_miss_and_a_false_positive() -> None:
    example = parse_annotated("it's [100234](order_number)")
    scores = score([example], [[predicted("phone", 5, 11, "100234")]])
    assert scores.per_type["order_number"].false_negatives == 1
    assert scores.per_type["order_number"].wrong_type == 1
    assert scores.per_type["phone"].false_positives == 1
    assert sorted((e["side"], e["kind"]) for e in scores.errors) == [
        ("gold", "wrong_type"),
        ("predicted", "wrong_type"),
    ]


def test_partial_overlap_is_counted_but_not_correct() -> None:
    example = parse_annotated("call [+49 151 2345678](phone)")
    scores = score([example], [[predicted("phone", 9, 21, "151 2345678")]])
    figures = scores.per_type["phone"]
    assert (figures.true_positives, figures.false_positives, figures.false_negatives) == (0, 1, 1)
    assert figures.partial == 1
    assert {e["kind"] for e in scores.errors} == {"partial"}


def test_spurious_prediction_on_a_negative() -> None:
    example = parse_annotated("the code from the sms is 123456")
    scores = score([example], [[predicted("order_number", 25, 31, "123456")]])
    assert scores.per_type["order_number"].false_positives == 1
    assert scores.per_type["order_number"].precision == 0.0
    assert scores.errors[0]["kind"] == "spurious"


def test_duplicate_extractor_hits_count_once_and_name_both() -> None:
    text = "order 100777"
    merged = merge_predictions(
        [
            {
                "entity": "order_number",
                "start": 6,
                "end": 12,
                "value": "100777",
                "extractor": "DIETClassifier",
            },
            {
                "entity": "order_number",
                "start": 6,
                "end": 12,
                "value": "100777",
                "extractor": "RegexEntityExtractor",
            },
        ],
        text,
    )
    assert merged == [Prediction("order_number", 6, 12, "100777", ("DIETClassifier", "RegexEntityExtractor"))]
    scores = score([parse_annotated("order [100777](order_number)")], [merged])
    figures = scores.per_type["order_number"]
    assert (figures.predicted, figures.true_positives, figures.false_positives) == (1, 1, 0)
    assert scores.extractor_hits == {"DIETClassifier": 1, "RegexEntityExtractor": 1}
    assert scores.hits == [
        {
            "entity": "order_number",
            "value": "100777",
            "extractors": ["DIETClassifier", "RegexEntityExtractor"],
            "text": "order 100777",
        }
    ]


def test_one_prediction_cannot_match_two_gold_spans() -> None:
    example = parse_annotated("orders [100201](order_number) and [100201](order_number)")
    scores = score([example], [[predicted("order_number", 7, 13, "100201")]])
    figures = scores.per_type["order_number"]
    assert (figures.true_positives, figures.false_negatives) == (1, 1)


def test_micro_average_and_unscored_types() -> None:
    examples = [
        parse_annotated("[100001](order_number) [a@b.io](email)"),
        parse_annotated("no entity here"),
    ]
    predictions = [
        [predicted("order_number", 0, 6, "100001"), predicted("kb_article", 7, 13, "a@b.io")],
        [predicted("phone", 3, 9, "entity")],
    ]
    scores = score(examples, predictions)
    assert (scores.micro.true_positives, scores.micro.false_positives, scores.micro.false_negatives) == (
        1,
        1,
        1,
    )
    assert scores.micro.precision == pytest.approx(0.5)
    assert scores.micro.recall == pytest.approx(0.5)
    assert scores.unscored_entities == {"kb_article": 1}


def test_value_falls_back_to_the_text_slice() -> None:
    merged = merge_predictions([{"entity": "email", "start": 3, "end": 9}], "to a@b.io")
    assert merged == [Prediction("email", 3, 9, "a@b.io", ("unknown",))]


def test_regex_coverage_uses_the_whole_text(tmp_path: Path) -> None:
    (tmp_path / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n- regex: ticket_reference\n  examples: |\n    - \\b[Kk][Ff]-?\\d{6}\\b\n'
    )
    patterns = load_regexes(tmp_path)
    assert [pattern.pattern for pattern in patterns["ticket_reference"]] == [r"\b[Kk][Ff]-?\d{6}\b"]
    assert all(pattern.flags & re.IGNORECASE for pattern in patterns["ticket_reference"])
    covered = parse_annotated("see [kf000045](ticket_reference)")
    spaced = parse_annotated("see [KF 000045](ticket_reference)")
    assert regex_covers(covered.text, covered.spans[0], patterns["ticket_reference"])
    assert not regex_covers(spaced.text, spaced.spans[0], patterns["ticket_reference"])
    scores = score([spaced], [[]], regexes=patterns)
    assert scores.per_type["ticket_reference"].regex_covers == 0
    assert scores.errors[0]["regex_covers"] is False
