"""Measurement procedures. Each module measures one thing and returns a typed result (``base.MeasurementResult``).

To add a procedure: one module here (a function that measures, a result class) and its result class in
``PROCEDURES``; a thin test under ``benchmarks/`` calls it and hands the result to ``rerank_session.add``.
The order of ``PROCEDURES`` is the order of the report's sections.
"""

from __future__ import annotations

from ..ab.result import ABResult
from .base import MeasurementResult
from .data_profile import DataProfiles
from .invariance import InvarianceResult
from .load import LoadResults
from .matrix_result import MatrixResult
from .oom_boundary import OomBoundaries
from .overhead import OverheadResult
from .router import RouterResult
from .selfcheck import SelfCheckResult

PROCEDURES: tuple[type[MeasurementResult], ...] = (
    ABResult,  # an A/B run measures nothing itself: its verdict comes first
    SelfCheckResult,
    DataProfiles,
    MatrixResult,
    OverheadResult,
    OomBoundaries,
    LoadResults,
    RouterResult,
    InvarianceResult,
)

__all__ = ["PROCEDURES", "MeasurementResult"]
