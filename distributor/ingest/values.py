"""The values an upload takes and gives back: batch options, row problems, the result."""

from __future__ import annotations

from dataclasses import dataclass

from distributor.constants import (
    ASSET_TYPES,
    DESCRIPTION_MAX_CHARS,
    ISSUERS,
    SENDER_NAME_MAX_CHARS,
)
from distributor.errors import UploadRejected

NAME_MAX_CHARS = 255  # the width of batches.name, sender_name and description
OPTION_NAMES = {
    "sender name": " (--sender-name, senderName)",
    "description": " (--description, description)",
}
"""How the CLI and the API name the batch options that Centrapay limits."""


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """Defaults for every row of a batch; the optional CSV columns override them per row."""

    name: str
    asset_type: str
    issuer: str
    sender_name: str | None = None
    description: str | None = None

    def check(self) -> None:
        """Raise UploadRejected when an option cannot be stored or sent."""
        if self.asset_type not in ASSET_TYPES:
            raise UploadRejected(f"type must be one of {', '.join(ASSET_TYPES)}")
        if self.issuer not in ISSUERS:
            raise UploadRejected(f"issuer must be one of {', '.join(ISSUERS)}")
        # The CLI option and the API field are named, so the caller knows which to fix.
        for label, value, limit in (
            ("name", self.name, NAME_MAX_CHARS),
            ("sender name", self.sender_name, SENDER_NAME_MAX_CHARS),
            ("description", self.description, DESCRIPTION_MAX_CHARS),
        ):
            if value is not None and len(value) > limit:
                raise UploadRejected(
                    f"the batch {label}{OPTION_NAMES.get(label, '')} is longer than {limit} "
                    f"characters ({len(value)})"
                )
            if value is not None and "\0" in value:
                # Postgres cannot store a NUL in text; no name needs one
                raise UploadRejected(f"the batch {label} contains a NUL character")


@dataclass(frozen=True, kw_only=True)
class RowProblem:
    """Why one row was not accepted: the line it starts on, the field, a code and a message."""

    line: int
    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    """A stored batch: its id, its rows by state, and the first problems found."""

    batch_id: int
    counts: dict[str, int]
    problems: list[RowProblem]
