"""The audit log: who did what to which record, written in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.crm.models import AuditLog


def audit(
    session: Session,
    actor: str,
    action: str,
    record_type: str,
    record_id: object,
    details: dict[str, Any] | None = None,
    source: str | None = None,
) -> None:
    session.add(
        AuditLog(
            actor=actor,
            action=action,
            record_type=record_type,
            record_id=None if record_id is None else str(record_id),
            details=details or {},
            source=source,
        )
    )
