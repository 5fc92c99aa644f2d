"""The web widget's weight and start-up: bundle size (raw and gzipped) and the time from a shop page's
navigation start to the widget being ready (launcher rendered and the visitor's history loaded), p50/p95
over 20 page loads in headless Chromium.

The shop page is the demo host page (bot/web/static/widget/demo.html), served from its own origin, so
the widget loads cross-origin as it does on a customer's site. Two cases: a first visit (new browser
profile: empty cache, new visitor) and a returning visitor (cached script, a 20-message history).
Only the gateway runs (uvicorn as in the Procfile, on a fresh database, without the encoder warm-up):
the widget needs neither Rasa nor the action server to become ready.

`.venv/bin/python -m benchmarks.widget`; results go to benchmarks/results/widget.json.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, sync_playwright

from benchmarks.latency import machine_info, percentile
from benchmarks.results_file import save_results
from bot.settings import PROJECT_ROOT, Settings
from tests.support.stack import settings_env, stack_settings
from tests.support.visitors import named_visitor

RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "widget.json"
WIDGET_DIR = PROJECT_ROOT / "bot" / "web" / "static" / "widget"
BUNDLE = WIDGET_DIR / "kefu-widget.js"
LOADS = 20
TARGET_GZIP_BYTES = 30 * 1024
CHROMIUM = Path(os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"))
READY_TIMEOUT_MS = 30_000


def bundle_size() -> dict[str, Any]:
    raw = BUNDLE.read_bytes()
    gzipped = len(gzip.compress(raw, compresslevel=9))
    return {
        "file": str(BUNDLE.relative_to(PROJECT_ROOT)),
        "raw_bytes": len(raw),
        "gzip_bytes": gzipped,
        "target_gzip_bytes": TARGET_GZIP_BYTES,
        "met": gzipped < TARGET_GZIP_BYTES,
    }


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@contextmanager
def shop_site(root: Path, gateway_url: str) -> Iterator[str]:
    """The demo shop page on its own loopback origin, embedding the widget from `gateway_url`."""
    html = (WIDGET_DIR / "demo.html").read_text()
    (root / "shop.html").write_text(
        html.replace('src="/widget/kefu-widget.js"', f'src="{gateway_url}/widget/kefu-widget.js"')
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/shop.html"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def gateway(settings: Settings, log_path: Path) -> Iterator[str]:
    """A migrated database and the gateway alone; yields its base URL once /healthz answers."""
    env = settings_env(settings) | {"KB_WARM_UP": "false"}
    kefu = str(PROJECT_ROOT / ".venv" / "bin" / "kefu")
    subprocess.run([kefu, "db", "upgrade"], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(PROJECT_ROOT / ".venv" / "bin" / "uvicorn"),
                "--factory",
                "bot.web.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.gateway_port),
                "--no-access-log",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{settings.gateway_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited:\n{log_path.read_text()[-3000:]}")
            try:
                httpx.get(f"{url}/healthz", timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def seed_history(gateway_url: str, visitor: str, messages: int) -> int:
    """Give `visitor` a conversation: each message gets the polite fallback, Rasa being absent."""
    with httpx.Client(base_url=gateway_url, timeout=60) as http:
        for n in range(messages // 2):
            http.post(
                "/api/web/messages",
                json={"session": named_visitor(visitor), "text": f"question {n} about my order"},
            ).raise_for_status()
        return len(
            http.get("/api/web/history", params={"session": named_visitor(visitor)}).json()["messages"]
        )


def time_to_ready(browser: Browser, shop_url: str, loads: int, visitor: str | None) -> list[float]:
    """Milliseconds from navigation start to the widget's "kefu-widget-ready" mark, one per load."""
    timings: list[float] = []
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        if visitor is not None:
            # A returning visitor: their id is in the shop's storage, the script in the HTTP cache.
            context.add_init_script(f"localStorage.setItem('kefu.widget.visitor', {json.dumps(visitor)});")
        for n in range(loads + (1 if visitor is not None else 0)):
            page = context.new_page() if visitor is not None else browser.new_page()
            try:
                page.goto(shop_url)
                page.wait_for_function(
                    "() => performance.getEntriesByName('kefu-widget-ready').length > 0",
                    timeout=READY_TIMEOUT_MS,
                )
                launcher_shown = page.evaluate(
                    """() => {
                        const host = document.querySelector('kefu-chat');
                        const launcher = host && host.shadowRoot.querySelector('.launcher');
                        const box = launcher && launcher.getBoundingClientRect();
                        return Boolean(box && box.width > 0 && box.height > 0);
                    }"""
                )
                if not launcher_shown:
                    raise RuntimeError("the widget said it was ready without a launcher on screen")
                ready = float(page.evaluate("performance.getEntriesByName('kefu-widget-ready')[0].startTime"))
                if visitor is None or n > 0:  # the returning visitor's first load fills the cache
                    timings.append(ready)
            finally:
                if visitor is not None:
                    page.close()
                else:
                    page.context.close()
    finally:
        context.close()
    return timings


def summary(timings: list[float]) -> dict[str, Any]:
    return {
        "loads": len(timings),
        "p50_ms": round(percentile(timings, 0.50), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "max_ms": round(max(timings), 1),
        "mean_ms": round(statistics.fmean(timings), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--loads", type=int, default=LOADS)
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit(
            f"Chromium is missing at {CHROMIUM}: run scripts/provision_chromium.sh or set KEFU_CHROMIUM"
        )

    size = bundle_size()
    with tempfile.TemporaryDirectory(prefix="kefu-widget-bench-") as workdir:
        settings = stack_settings(Path(workdir)).model_copy(update={"rasa_timeout_seconds": 2.0})
        with gateway(settings, Path(workdir) / "gateway.log") as gateway_url:
            visitor = "b" * 32
            history_messages = seed_history(gateway_url, visitor, 20)
            with shop_site(Path(workdir), gateway_url) as shop_url, sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
                )
                try:
                    first_visit = time_to_ready(browser, shop_url, args.loads, visitor=None)
                    returning = time_to_ready(browser, shop_url, args.loads, visitor=visitor)
                finally:
                    browser.close()

    first = summary(first_visit) | {"history_messages": 0, "cache": "empty"}
    back = summary(returning) | {"history_messages": history_messages, "cache": "warm"}
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "bundle": size,
        "time_to_ready": {
            "definition": "navigation start -> launcher rendered and the visitor's history loaded "
            "(the widget's performance mark 'kefu-widget-ready'); shop page on another origin",
            "first_visit": first,
            "returning_visitor": back,
        },
    }
    save_results(RESULTS_PATH, report)
    print(
        f"Widget bundle: {size['raw_bytes']} bytes, {size['gzip_bytes']} bytes gzipped "
        f"(target < {TARGET_GZIP_BYTES} bytes: {'met' if size['met'] else 'NOT met'})"
    )
    print(
        f"Navigation start -> widget ready, {first['loads']} loads: first visit p50 {first['p50_ms']} ms, "
        f"p95 {first['p95_ms']} ms; returning visitor ({history_messages} messages) p50 {back['p50_ms']} ms, "
        f"p95 {back['p95_ms']} ms"
    )
    print(f"Saved {RESULTS_PATH.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
