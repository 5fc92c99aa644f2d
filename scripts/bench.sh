#!/usr/bin/env bash
# `make bench`: set up and train if needed, then measure latency, throughput, memory and start-up time.
# Arguments go to the benchmark (e.g. --quick); results land in benchmarks/results/latency.json.
set -euo pipefail
cd "$(dirname "$0")/.."

export RASA_TELEMETRY_ENABLED=false
export TF_CPP_MIN_LOG_LEVEL=2
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

bash scripts/bootstrap.sh
bash scripts/train.sh
.venv/bin/python -m benchmarks.latency "$@"
