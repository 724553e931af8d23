"""PostgreSQL / TimescaleDB storage: schema and migrations, the async writer, the reader.

Public surface: :class:`PostgresStore` (writes), :func:`init_database` (``tickvault init``),
the record types of the non-market tables, and :mod:`tickvault.query` for reading.
"""

from tickvault.storage.postgres.records import (
    Checkpoint,
    FeatureValue,
    GapRecord,
    QualityMetric,
    QuarantineRecord,
    Signal,
)
from tickvault.storage.postgres.schema import SCHEMA_VERSION, InitResult, migrate
from tickvault.storage.postgres.store import PostgresStore, WriterStats

__all__ = [
    "SCHEMA_VERSION",
    "Checkpoint",
    "FeatureValue",
    "GapRecord",
    "InitResult",
    "PostgresStore",
    "QualityMetric",
    "QuarantineRecord",
    "Signal",
    "WriterStats",
    "migrate",
]
