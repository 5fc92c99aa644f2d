"""A process's live search index: built from the database, rebuilt when articles are published.

Each process that searches (the action server, the gateway) holds one `LiveIndex`. A background
thread reads the index generation every `poll_seconds`; when publishing or archiving moved it, the
thread builds a new index from the stored vectors and swaps it in, so searches never wait for a
rebuild and no process needs a restart. If the database cannot be read, the old index stays.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from knowledge_base import embedding, store
from knowledge_base.index import Hit, Mode, SearchIndex

logger = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 2.0


class LiveIndex:
    def __init__(self, sessions: sessionmaker[Session], poll_seconds: float = DEFAULT_POLL_SECONDS) -> None:
        self._sessions = sessions
        self.poll_seconds = poll_seconds
        self._index: SearchIndex | None = None
        self._generation: int | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def generation(self) -> int | None:
        return self._generation

    @property
    def ready(self) -> bool:
        return self._index is not None

    def refresh(self, force: bool = False) -> bool:
        """Rebuild the index if the generation moved (or `force`); True when it was rebuilt."""
        with self._refresh_lock:
            with self._sessions.begin() as session:
                current = store.generation(session)
                if not force and self._index is not None and current == self._generation:
                    return False
                documents = store.load_documents(session)
            self._index = SearchIndex(documents, embedding.encode)
            self._generation = current
            logger.info("knowledge-base index: %d articles (generation %d)", len(documents), current)
            return True

    def index(self) -> SearchIndex:
        if self._index is None:
            self.refresh()
        assert self._index is not None
        return self._index

    def search(self, query: str, k: int = 5, mode: Mode = "hybrid") -> list[Hit]:
        return self.index().search(query, k=k, mode=mode)

    def start(self) -> None:
        """Load the index, then keep it current, in a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="kefu-kb-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                logger.exception("could not refresh the knowledge-base index; keeping the current one")
            self._stop.wait(self.poll_seconds)


_process_index: LiveIndex | None = None
_process_lock = threading.Lock()


def process_index(sessions: sessionmaker[Session]) -> LiveIndex:
    """This process's live index (one per process), started on first use together with the
    encoder, which the first question needs and which takes ~13 s to load."""
    global _process_index
    with _process_lock:
        if _process_index is None:
            _process_index = LiveIndex(sessions)
            _process_index.start()
            embedding.warm_up()
        return _process_index


def wait_until_ready(live: LiveIndex, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not live.ready and time.monotonic() < deadline:
        time.sleep(0.1)
    return live.ready
