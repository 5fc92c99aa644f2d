"""The fast NLU check: the intent accuracy Rasa measured on tests/nlu/heldout.yml (our own examples,
held out of training) must reach the minimum, or it fails and lists the misread ones. `make test` and
`make bench-nlu` run it.

`.venv/bin/python -m tests.nlu.check var/rasa-nlu-results --min-accuracy 0.95`, after
`rasa test nlu --nlu tests/nlu/heldout.yml --out var/rasa-nlu-results`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the --out folder of `rasa test nlu`")
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    args = parser.parse_args(argv)
    report_path = args.results / "intent_report.json"
    if not report_path.exists():
        print(f"[nlu] {report_path} is missing: did `rasa test nlu` run?", file=sys.stderr)
        return 2
    report = json.loads(report_path.read_text())
    accuracy = float(report["accuracy"])
    support = int(report["weighted avg"]["support"])
    errors_path = args.results / "intent_errors.json"
    errors = json.loads(errors_path.read_text()) if errors_path.exists() else []
    minimum = args.min_accuracy
    print(f"[nlu] held-out intent accuracy {accuracy:.1%} on {support} examples (minimum {minimum:.0%})")
    for error in errors:
        predicted = error.get("intent_prediction") or {}
        print(
            f"[nlu]   {error['text']!r}: expected {error['intent']}, "
            f"got {predicted.get('name')} ({float(predicted.get('confidence') or 0):.2f})"
        )
    if accuracy < args.min_accuracy:
        print("[nlu] FAILED: the model misreads too many of our own held-out examples", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
