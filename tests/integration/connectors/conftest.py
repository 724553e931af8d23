"""Fixtures of the connector tests: an initialized PostgreSQL database (plain mode)."""

from __future__ import annotations

import pytest
from connector_kit import PLAIN

from tickvault.storage.postgres.schema import init_database


@pytest.fixture
def db_url(database_url: str) -> str:
    init_database(database_url, PLAIN)
    return database_url
