"""The support lead's dashboard: service measures over a date range, and CSV behind each chart.

The measures themselves are defined in `bot.crm.metrics`; this module maps HTTP onto them. Both
routes need a lead's login. Dates are UTC calendar days; `to` is included.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from bot.crm import metrics
from bot.crm.audit import audit
from bot.crm.models import utcnow
from bot.errors import BadRequest, NotFound
from bot.web.deps import Lead, LoginFirstRoute, SessionDep

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"], route_class=LoginFirstRoute)

DEFAULT_DAYS = 30
MAX_DAYS = 400
FromDay = Annotated[str | None, Query(alias="from", description="first day, YYYY-MM-DD (UTC)")]
ToDay = Annotated[str | None, Query(alias="to", description="last day, included, YYYY-MM-DD (UTC)")]


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a date like 2026-11-01, not {value!r}") from None


def date_range(start: str | None, end: str | None) -> tuple[date, date]:
    """The range asked for: by default the last 30 days up to today (UTC), today included."""
    last = _day(end, "to") if end else utcnow().date()
    first = _day(start, "from") if start else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise BadRequest(f"from ({first}) is after to ({last}); swap them")
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise BadRequest(f"the range covers {days} days; ask for at most {MAX_DAYS} at a time")
    return first, last


@router.get("")
def get_dashboard(
    session: SessionDep, _lead: Lead, start: FromDay = None, end: ToDay = None
) -> dict[str, Any]:
    """Every chart for the range, with its columns, rows and headline figures."""
    first, last = date_range(start, end)
    with session.begin():
        return metrics.dashboard(session, first, last, utcnow()).as_dict()


@router.get("/{chart_id}.csv")
def export_chart(
    chart_id: str, request: Request, session: SessionDep, lead: Lead, start: FromDay = None, end: ToDay = None
) -> Response:
    """One chart's rows as CSV (header = its columns); each export is written to the audit log."""
    if chart_id not in metrics.CHART_IDS:
        raise NotFound(f"there is no chart {chart_id!r}; the charts are {', '.join(metrics.CHART_IDS)}")
    first, last = date_range(start, end)
    with session.begin():
        chart = metrics.dashboard(session, first, last, utcnow(), only=[chart_id]).chart(chart_id)
        details = {"from": first.isoformat(), "to": last.isoformat()}
        source = request.client.host if request.client else None
        audit(session, f"agent:{lead.id}", "dashboard_exported", "dashboard", chart_id, details, source)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(chart.columns)
    writer.writerows(chart.rows)
    filename = f"kefu-{chart_id}-{first.isoformat()}-{last.isoformat()}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
