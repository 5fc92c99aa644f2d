"""Questions the knowledge base could not answer, grouped so a lead sees what to write next.

A gap is recorded when a question scored too low for any article ("no answer"), and when the
customer said none of the articles offered helped ("didn't help"). Open gaps are grouped by reason,
then by meaning: each joins the group whose centre is closest, if within `SIMILARITY`, else starts
a new one. A group is known by the id of its first gap, and can be turned into a draft article
holding its questions. When an article is published, the listed questions are searched again and
those it now answers are marked answered by it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.audit import audit
from bot.crm.models import GapStatus, KbArticle, KbGap, Message
from bot.errors import NotFound
from knowledge_base import curation, embedding
from knowledge_base.curation import Actor
from knowledge_base.index import Hit

SIMILARITY = 0.6
MAX_QUESTION_CHARS = 500
EXAMPLES_SHOWN = 5
CONTEXT_TURNS = 2
ANSWERED_SHOWN = 20
# The lead console's two lists, by the reason a gap was recorded.
REASON_GROUPS = {"no_match": "no_answer", "unhelpful": "unhelpful"}


def record_gap(
    session: Session,
    question: str,
    reason: str,
    conversation_id: int | None = None,
    message_id: int | None = None,
    best: Hit | None = None,
) -> KbGap:
    question = question.strip()[:MAX_QUESTION_CHARS]
    gap = KbGap(
        question=question,
        reason=reason,
        conversation_id=conversation_id,
        message_id=message_id,
        best_article_id=best.article_id if best else None,
        best_score=round(best.score, 4) if best else None,
        embedding=embedding.to_bytes(embedding.encode([question])) if question else None,
    )
    session.add(gap)
    session.flush()
    return gap


@dataclass
class Cluster:
    id: int
    gaps: list[KbGap]

    @property
    def count(self) -> int:
        return len(self.gaps)

    @property
    def first_seen(self) -> datetime:
        return min(gap.created_at for gap in self.gaps)

    @property
    def last_seen(self) -> datetime:
        return max(gap.created_at for gap in self.gaps)

    def questions(self) -> list[str]:
        """Distinct questions, most frequent first, then most recent."""
        counts = Counter(gap.question.strip() for gap in self.gaps if gap.question.strip())
        latest = {gap.question.strip(): gap.created_at for gap in self.gaps}
        return sorted(counts, key=lambda q: (-counts[q], -latest[q].timestamp()))

    def view(self, session: Session) -> dict[str, Any]:
        reasons = Counter(gap.reason for gap in self.gaps)
        examples = self.questions()[:EXAMPLES_SHOWN]
        # The latest time each example was asked, with the chat just before it.
        latest: dict[str, KbGap] = {}
        for gap in self.gaps:
            latest[gap.question.strip()] = gap
        return {
            "id": self.id,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "examples": examples,
            "items": [
                {
                    "question": q,
                    "asked_at": latest[q].created_at.isoformat(),
                    "context": context(session, latest[q]),
                }
                for q in examples
            ],
            "reasons": dict(reasons),
        }


def context(session: Session, gap: KbGap) -> list[dict[str, str]]:
    """The chat's turns just before the question, oldest first, so "and the return?" reads right."""
    if gap.conversation_id is None or gap.message_id is None:
        return []
    before = session.scalars(
        select(Message)
        .where(
            Message.conversation_id == gap.conversation_id, Message.id < gap.message_id, Message.text != ""
        )
        .order_by(Message.id.desc())
        .limit(CONTEXT_TURNS)
    )
    return [{"author": m.author_kind.value, "text": m.text} for m in reversed(list(before))]


def clusters(session: Session, reason: str | None = None) -> list[Cluster]:
    """Open gaps grouped by reason, then by meaning, the largest group first."""
    if reason is None:
        found = [cluster for r in REASON_GROUPS for cluster in clusters(session, r)]
        return sorted(found, key=lambda cluster: (-cluster.count, -cluster.last_seen.timestamp()))
    gaps = list(
        session.scalars(
            select(KbGap).where(KbGap.status == GapStatus.OPEN, KbGap.reason == reason).order_by(KbGap.id)
        )
    )
    groups: list[list[KbGap]] = []
    centres: list[np.ndarray] = []
    for gap in gaps:
        if gap.embedding is None:
            gap.embedding = embedding.to_bytes(embedding.encode([gap.question]))
        vector = embedding.from_bytes(gap.embedding)[0]
        if centres:
            similarities = np.array([centre @ vector for centre in centres])
            best = int(similarities.argmax())
            if similarities[best] >= SIMILARITY:
                groups[best].append(gap)
                total = np.sum(
                    [embedding.from_bytes(g.embedding)[0] for g in groups[best] if g.embedding], axis=0
                )
                centres[best] = total / np.linalg.norm(total)
                continue
        groups.append([gap])
        centres.append(vector)
    found = [Cluster(id=group[0].id, gaps=group) for group in groups]
    return sorted(found, key=lambda cluster: (-cluster.count, -cluster.last_seen.timestamp()))


def find_cluster(session: Session, cluster_id: int) -> Cluster:
    for cluster in clusters(session):
        if cluster.id == cluster_id:
            return cluster
    raise NotFound(f"no open group of unanswered questions with id {cluster_id}; reload the list")


def _slug_from(question: str, taken: set[str]) -> str:
    words = re.findall(r"[a-z0-9]+", question.lower())[:7] or ["new", "article"]
    base = "-".join(words)[: curation.MAX_SLUG - 4].strip("-")
    slug, suffix = base, 2
    while slug in taken:
        slug, suffix = f"{base}-{suffix}", suffix + 1
    return slug


def draft_from_cluster(session: Session, actor: Actor, cluster_id: int) -> KbArticle:
    """A draft article whose title and problem come from the group's questions; its gaps are marked."""
    cluster = find_cluster(session, cluster_id)
    questions = cluster.questions()
    title = questions[0][: curation.MAX_TITLE].rstrip()
    title = title[0].upper() + title[1:] if title else "New article"
    taken = set(session.scalars(select(KbArticle.slug)))
    article = curation.create_draft(
        session,
        actor,
        _slug_from(title, taken),
        {"title": title, "problem": "\n".join(questions[:20]), "solution": "", "tags": []},
        change_note=f"drafted from {cluster.count} unanswered question(s)",
    )
    for gap in cluster.gaps:
        gap.status = GapStatus.DRAFTED
        gap.draft_article_id = article.id
    audit(
        session,
        actor.name,
        "kb.gap_draft",
        "kb_article",
        article.slug,
        {"cluster": cluster_id, "gaps": [gap.id for gap in cluster.gaps]},
        actor.source,
    )
    return article


def answered(session: Session) -> list[dict[str, Any]]:
    """Questions a published article now answers, the newest first."""
    found = session.scalars(
        select(KbGap)
        .where(KbGap.status == GapStatus.ANSWERED)
        .order_by(KbGap.id.desc())
        .limit(ANSWERED_SHOWN)
    )
    views = []
    for gap in found:
        article = session.get(KbArticle, gap.best_article_id) if gap.best_article_id else None
        version = article.published_version if article else None
        views.append(
            {
                "question": gap.question,
                "reason": REASON_GROUPS.get(gap.reason, gap.reason),
                "asked_at": gap.created_at.isoformat(),
                "article": {"slug": article.slug, "title": version.title if version else article.slug}
                if article
                else None,
            }
        )
    return views


Search = Callable[[str], Sequence[Hit]]


def recheck(session: Session, article: KbArticle, search: Search, answer_score: float) -> list[KbGap]:
    """Mark the listed questions (open, or in a draft) that `article` now answers: it is the best
    hit for the question and scores at least `answer_score`, as the bot would answer with it."""
    listed = session.scalars(
        select(KbGap).where(KbGap.status.in_([GapStatus.OPEN, GapStatus.DRAFTED])).order_by(KbGap.id)
    )
    done: list[KbGap] = []
    for gap in listed:
        hits = search(gap.question)
        if hits and hits[0].article_id == article.id and hits[0].score >= answer_score:
            gap.status = GapStatus.ANSWERED
            gap.best_article_id = article.id
            gap.best_score = round(hits[0].score, 4)
            done.append(gap)
    return done
