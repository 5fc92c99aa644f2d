"""The training benchmark reads each component's training time from Rasa's log, colours and all."""

from __future__ import annotations

from benchmarks.nlu_train import component_seconds

HOOKS = "INFO     rasa.engine.training.hooks  -"
LOG = "\n".join(
    [
        f"\x1b[0m2026-12-01 03:27:26 {HOOKS} Starting to train component 'DIETClassifier'.",
        "Epochs: 100%|##########| 40/40 [01:30<00:00,  2.2s/it]",
        f"\x1b[0m2026-12-01 03:28:58 {HOOKS} Finished training component 'DIETClassifier'.",
        f"2026-12-01 03:28:58 {HOOKS} Starting to train component 'SentenceIntentClassifier'.",
        f"2026-12-01 03:29:04 {HOOKS} Finished training component 'SentenceIntentClassifier'.",
        f"2026-12-01 03:29:04 {HOOKS} Starting to train component 'TEDPolicy'.",
    ]
)


def test_component_times_come_from_the_start_and_finish_lines_slowest_first() -> None:
    assert component_seconds(LOG) == {"DIETClassifier": 92.0, "SentenceIntentClassifier": 6.0}
    assert list(component_seconds(LOG)) == ["DIETClassifier", "SentenceIntentClassifier"]
