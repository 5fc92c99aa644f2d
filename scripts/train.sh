#!/usr/bin/env bash
# Trains the Rasa model only when config.yml, domain.yml, data/ or kefu_nlu/ changed since the last training.
set -euo pipefail
cd "$(dirname "$0")/.."

fingerprint=$(cat config.yml domain.yml $(find data -type f -name '*.yml' | sort) kefu_nlu/*.py | sha256sum | cut -d' ' -f1)
if [ -f models/kefu.tar.gz ] && [ "$(cat models/.kefu-train-hash 2>/dev/null)" = "$fingerprint" ]; then
    echo "[train] model is up to date with config.yml, domain.yml, data/ and kefu_nlu/"
    exit 0
fi
echo "[train] training the Rasa model (a few minutes on 2 cores)..."
start=$(date +%s)
PYTHONWARNINGS=ignore .venv-rasa/bin/rasa train --config config.yml --domain domain.yml --data data \
    --out models --fixed-model-name kefu --quiet
echo "$fingerprint" > models/.kefu-train-hash
echo "[train] done in $(( $(date +%s) - start )) s: models/kefu.tar.gz"
