"""Where every benchmark's figures end up: one JSON file each, under benchmarks/results/ by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_results(path: Path, results: dict[str, Any]) -> Path:
    """Write `results` to `path` as indented JSON (non-ASCII text kept as is), making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
