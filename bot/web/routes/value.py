"""Customer equity and loyalty for the support lead (bot/crm/loyalty.py), with CSV behind each chart.

Kept apart from the service dashboard's routes: these figures describe the customer base as it
stands now, not a date range. Both routes need a lead's login; each export is audited.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Request, Response

from bot.crm import loyalty
from bot.crm.audit import audit
from bot.crm.models import utcnow
from bot.errors import NotFound
from bot.web.deps import Lead, LoginFirstRoute, SessionDep

router = APIRouter(prefix="/api/value", tags=["customer value"], route_class=LoginFirstRoute)


@router.get("/charts")
def get_value_charts(session: SessionDep, _lead: Lead) -> dict[str, Any]:
    """Equity by tier, stage and cohort, cohort retention and the loyalty figures."""
    today = utcnow().date()
    with session.begin():
        return {"as_of": today.isoformat(), "charts": [c.as_dict() for c in loyalty.charts(session, today)]}


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
