"""Customer equity, loyalty and the win-back list for the support lead, with CSV behind each.

Kept apart from the service dashboard's routes: these figures describe the customer base as it
stands now, not a date range. Both routes need a lead's login; each export is audited.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from bot.crm import loyalty, winback
from bot.crm.audit import audit
from bot.crm.models import utcnow
from bot.crm.value import ValueConfig
from bot.errors import BadRequest, NotFound
from bot.web.deps import Lead, LoginFirstRoute, SessionDep

router = APIRouter(prefix="/api/value", tags=["customer value"], route_class=LoginFirstRoute)


@router.get("/charts")
def get_value_charts(session: SessionDep, _lead: Lead) -> dict[str, Any]:
    """Equity by tier, stage and cohort, cohort retention and the loyalty figures."""
    today = utcnow().date()
    with session.begin():
        return {"as_of": today.isoformat(), "charts": [c.as_dict() for c in loyalty.charts(session, today)]}


WINBACK_COLUMNS = [
    "customer_id",
    "name",
    "email",
    "stage",
    "tier",
    "value_if_won_back_eur",
    "value_to_date_eur",
    "future_value_eur",
    "reasons",
    "details",
]
Stage = Annotated[str | None, Query(description="churned or declining; both when left out")]
Reason = Annotated[str | None, Query(description="only customers with this defection reason")]


def _winback(
    request: Request, session: Session, stage: str | None, reason: str | None
) -> list[winback.Candidate]:
    if stage is not None and stage not in [s.value for s in winback.STAGES]:
        raise BadRequest(f"stage must be churned or declining, not {stage!r}")
    if reason is not None and reason not in winback.REASONS:
        raise BadRequest(f"reason must be one of {', '.join(winback.REASONS)}, not {reason!r}")
    config = ValueConfig.from_settings(request.app.state.settings)
    return winback.candidates(session, utcnow().date(), config, stage, reason)


def _row(candidate: winback.Candidate) -> list[Any]:
    return [
        candidate.customer_id,
        candidate.name,
        candidate.email,
        candidate.stage,
        candidate.tier,
        candidate.value_if_won_back,
        candidate.value_to_date,
        candidate.future_value,
        " ".join(candidate.defection.reasons),
        candidate.defection.describe(),
    ]


@router.get("/winback")
def get_winback(
    request: Request, session: SessionDep, _lead: Lead, stage: Stage = None, reason: Reason = None
) -> dict[str, Any]:
    """Churned and declining customers, the most valuable to win back first, with their reasons."""
    with session.begin():
        found = _winback(request, session, stage, reason)
    return {
        "columns": WINBACK_COLUMNS,
        "customers": [dict(zip(WINBACK_COLUMNS, _row(c), strict=True)) for c in found],
    }


@router.get("/winback.csv")
def export_winback(
    request: Request, session: SessionDep, lead: Lead, stage: Stage = None, reason: Reason = None
) -> Response:
    """The win-back list as CSV, with the same filters; each export is audited (it holds contact data)."""
    with session.begin():
        found = _winback(request, session, stage, reason)
        source = request.client.host if request.client else None
        details = {"stage": stage, "reason": reason, "customers": len(found)}
        audit(session, f"agent:{lead.id}", "winback_exported", "dashboard", "winback", details, source)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(WINBACK_COLUMNS)
    writer.writerows(_row(c) for c in found)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="kefu-winback-{utcnow().date().isoformat()}.csv"'
        },
    )


@router.get("/{chart_id}.csv")
def export_value_chart(chart_id: str, request: Request, session: SessionDep, lead: Lead) -> Response:
    """One chart's rows as CSV (header = its columns)."""
    if chart_id not in loyalty.CHART_IDS:
        raise NotFound(f"there is no chart {chart_id!r}; the charts are {', '.join(loyalty.CHART_IDS)}")
    today = utcnow().date()
    with session.begin():
        chart = loyalty.charts(session, today, only=chart_id)[0]
        source = request.client.host if request.client else None
        audit(session, f"agent:{lead.id}", "value_chart_exported", "dashboard", chart_id, {}, source)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(chart.columns)
    writer.writerows(chart.rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="kefu-{chart_id}-{today.isoformat()}.csv"'},
    )
