"""How long `rasa train` takes from nothing on this machine, and how big the model is.

Trains config.yml + domain.yml + data/ into a temporary folder with Rasa's component cache switched
off (RASA_MAX_CACHE_SIZE=0), so every component really trains, exactly as on a fresh clone. The
target is at most 5 minutes on the 2-core machine. Prints the figures and saves them to
benchmarks/results/nlu_train.json, with the time each component took (from Rasa's log).

`.venv/bin/python -m benchmarks.nlu_train`; part of `make bench-nlu` and `make bench`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.latency import machine_info
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "nlu_train.json"
TARGET_SECONDS = 300
RASA = PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa"
# "2026-12-01 03:16:18 INFO     rasa.engine.training.hooks  - Starting to train component 'X'."
HOOK = re.compile(
    r"^(\S+ \S+) INFO\s+rasa\.engine\.training\.hooks\s+- "
    r"(Starting to train|Finished training) component '([^']+)'"
)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def component_seconds(log: str) -> dict[str, float]:
    started: dict[str, datetime] = {}
    took: dict[str, float] = {}
    for line in ANSI.sub("", log).splitlines():
        match = HOOK.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        name = match.group(3)
        if match.group(2).startswith("Starting"):
            started[name] = stamp
        elif name in started:
            took[name] = took.get(name, 0.0) + (stamp - started.pop(name)).total_seconds()
    return dict(sorted(took.items(), key=lambda item: -item[1]))


def main() -> int:
    if not RASA.exists():
        print("benchmarks.nlu_train: .venv-rasa is missing; run `bash scripts/bootstrap.sh`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kefu-train-") as out:
        env = {
            **os.environ,
            "RASA_MAX_CACHE_SIZE": "0",
            "PYTHONWARNINGS": "ignore",
            "RASA_TELEMETRY_ENABLED": "false",
        }
        command = [str(RASA), "train", "--config", "config.yml", "--domain", "domain.yml", "--data", "data",
                   "--out", out, "--fixed-model-name", "kefu"]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        model = Path(out) / "kefu.tar.gz"
        if result.returncode != 0 or not model.exists():
            print(result.stdout[-3000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
            print(f"benchmarks.nlu_train: rasa train failed (exit {result.returncode})", file=sys.stderr)
            return 1
        size = model.stat().st_size
        components = component_seconds(result.stdout + "\n" + result.stderr)
    verdict = "met" if seconds <= TARGET_SECONDS else "NOT met"
    print(f"rasa train from nothing: {seconds:.0f} s (target <= {TARGET_SECONDS} s: {verdict}); "
          f"model {size / 1e6:.1f} MB")  # fmt: skip
    for name, took in list(components.items())[:6]:
        print(f"  {name:<32} {took:6.0f} s")
    out_json: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "train_seconds": round(seconds, 1),
        "target_seconds": TARGET_SECONDS,
        "target_met": seconds <= TARGET_SECONDS,
        "model_bytes": size,
        "component_seconds": components,
    }
    save_results(RESULTS_PATH, out_json)
    print(f"Saved {RESULTS_PATH.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
