"""columnar.wrap_sql against a real PostgreSQL server."""

from __future__ import annotations

import psycopg

from tickvault.storage.postgres.columnar import wrap_sql


def test_time_text_is_exact_on_both_sides_of_the_fast_range(database_url: str) -> None:
    """The float8 shortcut before 2100 and the exact numeric path after give the exact µs."""
    columns = (("ts", "ts"),)
    times = ["1970-01-01 00:00:00.000001+00", "2024-02-29 23:59:59.999999+00",
             "2099-12-31 23:59:59.999999+00", "2106-02-07 18:50:34.698707+00",
             "2262-04-11 23:47:16.854775+00"]  # fmt: skip
    values = ", ".join(f"('{t}'::timestamptz)" for t in times)
    with psycopg.connect(database_url, autocommit=True) as conn:
        sql = f"SELECT ts FROM (VALUES {values}) v(ts)"
        got = conn.execute(wrap_sql(columns, sql)).fetchall()
        want = conn.execute(
            f"SELECT (extract(epoch FROM ts) * 1000000)::int8 FROM ({sql}) w"
        ).fetchall()
    assert got == want and len(got) == 5
