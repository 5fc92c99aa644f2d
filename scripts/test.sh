#!/usr/bin/env bash
# `make test`: set up if needed, validate the Rasa data, train if needed, run Rasa's conversation
# tests and the pytest suite (which starts the real Rasa, action server and gateway for end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
bash scripts/provision_chromium.sh
echo "[test] rasa data validate"
PYTHONWARNINGS=ignore .venv-rasa/bin/rasa data validate --config config.yml --domain domain.yml --data data --quiet
bash scripts/train.sh
echo "[test] rasa test (conversation stories in tests/stories)"
rm -rf var/rasa-test-results
PYTHONWARNINGS=ignore .venv-rasa/bin/rasa test core --model models/kefu.tar.gz --stories tests/stories \
    --out var/rasa-test-results --fail-on-prediction-errors --quiet
echo "[test] pytest"
.venv/bin/python -m pytest "$@"
