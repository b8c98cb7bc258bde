"""Errors a user can act on. Every message names the problem and the fix."""

from __future__ import annotations


class RerankPerfError(Exception):
    """Base class: a problem with the user's input or machine, not a bug in the plugin."""


class UsageError(RerankPerfError):
    """A bad option value, ini key or argument."""


class ModelNotFoundError(RerankPerfError):
    """Real weights were asked for but are not on this machine."""


class DeviceError(RerankPerfError):
    """The requested device or precision is not available here."""


class WorkloadError(RerankPerfError):
    """A workload cannot be built as specified, or a user data file is malformed."""
