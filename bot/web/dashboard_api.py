"""The support lead's dashboard: service measures over a date range, and CSV behind each chart."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])
