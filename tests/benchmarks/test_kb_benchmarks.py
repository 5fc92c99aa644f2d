"""Smoke tests of the knowledge-base benchmarks: they run end to end on tiny inputs and write their JSON.

A word-hashing stand-in replaces the sentence encoder, so these take a second instead of loading the
model; the figures themselves are only meaningful in a real run (`make bench-kb`).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks import kb_retrieval, kb_speed
from knowledge_base import embedding, seeds, text
from knowledge_base.index import Hit


def hashed_encode(texts: list[str], batch_size: int = 64) -> np.ndarray:
    vectors = np.zeros((len(texts), embedding.DIMENSIONS), dtype=np.float32)
    for row, item in enumerate(texts):
        for word in item.lower().split():
            vectors[row, zlib.crc32(word.encode()) % embedding.DIMENSIONS] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


@pytest.fixture(autouse=True)
def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "encode", hashed_encode)


@pytest.fixture
def questions_file(tmp_path: Path) -> Path:
    path = tmp_path / "questions.yml"
    path.write_text(
        "questions:\n"
        "  - {q: 'I forgot my password', slug: forgot-password}\n"
        "  - {q: 'how do I delete my account', slug: delete-account}\n"
        "  - {q: 'where is my parcel', slug: track-my-order}\n"
        "  - {q: 'typo in the set', slug: no-such-article}\n"
    )
    return path


def test_retrieval_runs_end_to_end_and_writes_every_figure(tmp_path: Path, questions_file: Path) -> None:
    bitext = tmp_path / "bitext.csv"
    bitext.write_text(
        "\ufeffflags,utterance,category,intent\n"
        "B,i forgot my password,ACCOUNT,recover_password\n"
        'B,"delete my account, please",ACCOUNT,delete_account\n'
        "B,what is the weather,OTHER,weather\n"
    )
    intent_map = tmp_path / "map.yml"
    intent_map.write_text(
        "intents:\n"
        "  recover_password: [forgot-password]\n"
        "  delete_account: [delete-account]\n"
        "  weather: null\n"
    )
    output = tmp_path / "out.json"
    argv = ["--questions", str(questions_file), "--bitext", str(bitext), "--map", str(intent_map)]

    status = kb_retrieval.main([*argv, "--output", str(output), "--strict"])

    results = json.loads(output.read_text())
    assert set(results["questions"]["modes"]) == {"dense", "lexical", "hybrid"}
    assert results["questions"]["modes"]["hybrid"]["questions"] == 3
    assert results["questions"]["unknown_slugs"] == [{"q": "typo in the set", "slug": "no-such-article"}]
    assert sum(results["questions"]["band_counts"].values()) == 3
    assert results["bitext"]["utterances_scored"] == 2
    assert results["bitext"]["null_intents"]["utterances"] == 1
    failed = [target for target in results["targets"] if not target["pass"]]
    assert status == (1 if failed else 0)


def hit(slug: str, score: float) -> Hit:
    return Hit(1, 1, slug, slug, score, score, 0.0)


def test_band_outcomes_judge_the_answer_against_the_accepted_articles() -> None:
    assert kb_retrieval.band_outcome([hit("a", 0.9), hit("b", 0.5)], ["a"], 0.62, 0.45) == "answer_right"
    assert kb_retrieval.band_outcome([hit("b", 0.9), hit("a", 0.5)], ["a"], 0.62, 0.45) == "answer_wrong"
    assert (
        kb_retrieval.band_outcome([hit("b", 0.5), hit("a", 0.49)], ["a"], 0.62, 0.45) == "choice_with_right"
    )
    assert (
        kb_retrieval.band_outcome([hit("b", 0.5), hit("c", 0.49)], ["a"], 0.62, 0.45)
        == "choice_without_right"
    )
    assert kb_retrieval.band_outcome([hit("a", 0.3)], ["a"], 0.62, 0.45) == "no_answer"


def test_generated_articles_are_reproducible_and_shaped_like_the_real_ones() -> None:
    real = seeds.read_seed_files()
    generator = kb_speed.Generator(real)
    assert generator.article(0) == real[0]
    generated = [generator.article(position) for position in range(len(real), len(real) + 200)]
    assert generated[5] == kb_speed.Generator(real).article(len(real) + 5)
    assert len({article.slug for article in generated}) == 200
    for article in generated:
        base = real[int(article.slug.rsplit("-", 1)[1]) % len(real)]
        assert len(text.problem_lines(article.problem)) == len(text.problem_lines(base.problem))


def test_speed_runs_end_to_end_with_limited_texts(tmp_path: Path, questions_file: Path) -> None:
    output = tmp_path / "speed.json"
    argv = ["--sizes", "95,120", "--queries", "10", "--questions", str(questions_file)]

    kb_speed.main([*argv, "--max-texts", "1", "--max-texts-from", "100", "--output", str(output)])

    results = json.loads(output.read_text())
    small, large = results["sizes"]
    assert (small["articles"], large["articles"]) == (95, 120)
    assert large["build"]["this_step"]["articles_with_limited_texts"] == 20
    # --fill repeat: limited articles keep as many index rows as they have texts.
    assert large["embedded_texts_per_article"] < large["vectors_per_article"]
    assert large["latency"]["queries"] == 10
    assert large["memory"]["matrix_bytes"] == large["vectors"] * embedding.DIMENSIONS * 4


def test_a_second_run_reads_the_vectors_from_the_cache(tmp_path: Path, questions_file: Path) -> None:
    argv = ["--sizes", "100", "--queries", "5", "--questions", str(questions_file), "--cache", str(tmp_path)]
    kb_speed.main([*argv, "--output", str(tmp_path / "first.json")])
    kb_speed.main([*argv, "--output", str(tmp_path / "second.json")])

    first = json.loads((tmp_path / "first.json").read_text())["sizes"][0]
    second = json.loads((tmp_path / "second.json").read_text())["sizes"][0]
    assert first["build"]["this_step"]["articles_from_cache"] == 0
    assert second["build"]["this_step"]["articles_from_cache"] == 100
    assert second["vectors"] == first["vectors"]
