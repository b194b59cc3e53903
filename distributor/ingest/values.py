"""The values an upload takes and gives back: batch options, row problems, the result."""

from __future__ import annotations

from dataclasses import dataclass

from distributor.constants import ASSET_TYPES, ISSUERS
from distributor.errors import UploadRejected

NAME_MAX_CHARS = 255  # the width of batches.name, sender_name and description


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
        for label, value in (
            ("name", self.name),
            ("sender name", self.sender_name),
            ("description", self.description),
        ):
            if value is not None and len(value) > NAME_MAX_CHARS:
                raise UploadRejected(
                    f"the batch {label} is longer than {NAME_MAX_CHARS} characters"
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
