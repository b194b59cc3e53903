"""CSV ingestion: an uploaded file becomes a batch of rows, checked and stored in one go.

``parse`` reads records from bytes, ``columns`` names their fields, ``validate`` applies
the row rules, ``store`` writes to the database, and ``upload.ingest_csv`` runs them
chunk by chunk in one transaction.
"""

from __future__ import annotations

from distributor.ingest.upload import DUPLICATE_IN_FILE, DUPLICATE_LIVE, ingest_csv
from distributor.ingest.values import BatchOptions, IngestResult, RowProblem

__all__ = [
    "DUPLICATE_IN_FILE",
    "DUPLICATE_LIVE",
    "BatchOptions",
    "IngestResult",
    "RowProblem",
    "ingest_csv",
]
