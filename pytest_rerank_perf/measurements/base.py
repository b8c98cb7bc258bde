"""The contract of a measurement procedure's result: JSON in the run report, merge, and its own presentation.

A procedure is a module in this package with a function that measures (called by a thin test under
``benchmarks/``) and a result class implementing ``MeasurementResult``; the class is named in ``PROCEDURES``
(``measurements/__init__.py``). The session adds results as tests hand them over, the run report serialises and
merges them (xdist), and the index page and terminal summary show each one's own section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

M = TypeVar("M", bound="MeasurementResult")


class MeasurementResult(Protocol):
    key: ClassVar[str]  # the procedure's name

    def report_fields(self) -> dict[str, Any]:
        """Top-level fields of ``report.json`` (the names the report has always used)."""

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        """``report_fields`` of a run where this procedure did not run."""

    @classmethod
    def from_report(cls: type[M], data: Mapping[str, Any]) -> M | None:
        """The result from a saved report; None where the report has none."""

    def merge(self: M, other: M) -> M:
        """Two results of this procedure (from xdist workers, or two tests of one run) as one."""

    def summary_lines(self) -> list[str]:
        """Lines of the terminal summary."""

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        """Lines of ``index.md``; ``plots`` maps the report folder's PNG file names to their titles."""
