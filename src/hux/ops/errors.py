"""Errors of the operator tasks. Every message says what went wrong and what to do."""

from __future__ import annotations


class OpsError(Exception):
    """A backup, restore or maintenance task could not do its work; nothing half-done was left behind."""


class ApiError(OpsError):
    """A component's HTTP API refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class ArchiveError(OpsError):
    """A backup archive is missing, damaged, of the wrong kind or fails its checksums."""


class BackupError(OpsError):
    """A backup could not be written; no partial archive was kept."""


class RestoreError(OpsError):
    """A restore was refused or rolled back; the data that was there before is in place."""
