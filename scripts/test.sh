#!/usr/bin/env bash
# `make test`: set up if needed, check the import contracts, validate the Rasa data, train if needed, run Rasa's conversation
# tests, the fast NLU check on held-out examples, and the pytest suite (which starts the real Rasa, action server and gateway for end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
bash scripts/provision_chromium.sh
echo "[test] lint-imports (dependencies run one way; contracts in pyproject.toml)"
.venv/bin/lint-imports --no-cache
echo "[test] rasa data validate"
PYTHONWARNINGS=ignore .venv-rasa/bin/rasa data validate --config config.yml --domain domain.yml --data data --quiet
bash scripts/train.sh
echo "[test] rasa test (conversation stories in tests/stories)"
rm -rf var/rasa-test-results
PYTHONWARNINGS=ignore .venv-rasa/bin/rasa test core --model models/kefu.tar.gz --stories tests/stories \
    --out var/rasa-test-results --fail-on-prediction-errors --quiet
echo "[test] NLU check: our own examples held out of training (tests/nlu/heldout.yml), accuracy >= 95%"
rm -rf var/rasa-nlu-results
PYTHONWARNINGS=ignore .venv-rasa/bin/rasa test nlu --model models/kefu.tar.gz --nlu tests/nlu/heldout.yml \
    --out var/rasa-nlu-results --quiet > var/rasa-nlu-test.log 2>&1 || { tail -40 var/rasa-nlu-test.log; exit 1; }
.venv/bin/python -m tests.nlu.check var/rasa-nlu-results --min-accuracy 0.95
echo "[test] pytest"
.venv/bin/python -m pytest "$@"
