"""TimescaleDB-only SQL: hypertables, compression, continuous aggregates, policies.

Written against the TimescaleDB 2.x API (2.9+ for continuous aggregates on continuous aggregates):

* ``create_hypertable(table, 'ts', chunk_time_interval => ..., create_default_indexes => false)``
  — the older signature, still accepted by current releases; our own unique index already
  serves ``(exchange, symbol, ts DESC)``, so the default ``ts DESC`` index is not wanted.
* ``ALTER TABLE .. SET (timescaledb.compress, compress_segmentby, compress_orderby)`` then
  ``add_compression_policy``.
* Continuous aggregates are created ``WITH NO DATA`` (``WITH DATA`` cannot run inside the
  migration's transaction) and with ``timescaledb.materialized_only = false``: real-time
  aggregation is off by default since 2.13, and we want queries to see the newest trades.
* 1m bars come from trades; 5m, 15m, 1h, 4h and 1d are each built on the previous level
  (every width is a multiple of the one below, as hierarchical aggregates require).
* Aggregates inside the views use only what continuous aggregates accept: ``first``/``last``,
  ``min``/``max``/``sum``/``count`` and ``CASE`` instead of ``FILTER``.
"""

from __future__ import annotations

from psycopg import sql

from tickvault.config import TimescaleSettings
from tickvault.storage.postgres.ddl import RETENTION, TIME_SERIES

Statement = sql.SQL | sql.Composed

# (timeframe, bucket width, built from) — the stacked continuous aggregates
CAGG_LEVELS: tuple[tuple[str, str, str | None], ...] = (
    ("1m", "1 minute", None),
    ("5m", "5 minutes", "1m"),
    ("15m", "15 minutes", "5m"),
    ("1h", "1 hour", "15m"),
    ("4h", "4 hours", "1h"),
    ("1d", "1 day", "4h"),
)
CAGG_TIMEFRAMES = tuple(level[0] for level in CAGG_LEVELS)

# refresh policy per level: (start_offset, end_offset, schedule_interval); the window spans well
# over two buckets as TimescaleDB requires, real-time aggregation covers what is not refreshed.
_POLICIES: dict[str, tuple[str, str, str]] = {
    "1m": ("3 hours", "1 minute", "1 minute"),
    "5m": ("6 hours", "5 minutes", "5 minutes"),
    "15m": ("12 hours", "15 minutes", "15 minutes"),
    "1h": ("2 days", "1 hour", "30 minutes"),
    "4h": ("4 days", "4 hours", "1 hour"),
    "1d": ("7 days", "1 day", "1 hour"),
}


def cagg_name(timeframe: str) -> str:
    return f"candles_derived_{timeframe}"


def _cagg_sql(timeframe: str, width: str, parent: str | None) -> str:
    name = cagg_name(timeframe)
    head = (
        f"CREATE MATERIALIZED VIEW {name} WITH (timescaledb.continuous, "
        "timescaledb.materialized_only = false) AS\n"
    )
    if parent is None:
        return head + (
            f"SELECT exchange, symbol, time_bucket(INTERVAL '{width}', ts) AS bucket,\n"
            "  first(price, ts) AS open, max(price) AS high, min(price) AS low,\n"
            "  last(price, ts) AS close, sum(size) AS volume, count(*) AS trade_count,\n"
            "  sum(price * size) AS quote_volume,\n"
            "  sum(CASE WHEN side = 'buy' THEN size ELSE 0 END) AS buy_volume,\n"
            "  sum(CASE WHEN side = 'sell' THEN size ELSE 0 END) AS sell_volume,\n"
            "  max(ts) AS event_ts, max(recv_ts) AS recv_ts\n"
            f"FROM trades GROUP BY exchange, symbol, time_bucket(INTERVAL '{width}', ts)\n"
            "WITH NO DATA"
        )
    return head + (
        f"SELECT exchange, symbol, time_bucket(INTERVAL '{width}', bucket) AS bucket,\n"
        "  first(open, bucket) AS open, max(high) AS high, min(low) AS low,\n"
        "  last(close, bucket) AS close, sum(volume) AS volume,\n"
        "  sum(trade_count) AS trade_count, sum(quote_volume) AS quote_volume,\n"
        "  sum(buy_volume) AS buy_volume, sum(sell_volume) AS sell_volume,\n"
        "  max(event_ts) AS event_ts, max(recv_ts) AS recv_ts\n"
        f"FROM {cagg_name(parent)}\n"
        f"GROUP BY exchange, symbol, time_bucket(INTERVAL '{width}', bucket)\n"
        "WITH NO DATA"
    )


def hypertable_statements(settings: TimescaleSettings) -> list[Statement]:
    """Turn the (empty, just created) time-series tables into compressed hypertables."""
    out: list[Statement] = []
    for table, field in TIME_SERIES.items():
        chunk = getattr(settings, field)
        out.append(
            sql.SQL(
                "SELECT create_hypertable({table}, 'ts', chunk_time_interval => {chunk}::interval,"
                " create_default_indexes => false)"
            ).format(table=sql.Literal(table), chunk=sql.Literal(chunk))
        )
        out.append(
            sql.SQL(
                "ALTER TABLE {table} SET (timescaledb.compress, "
                "timescaledb.compress_segmentby = 'exchange, symbol', "
                "timescaledb.compress_orderby = 'ts DESC')"
            ).format(table=sql.Identifier(table))
        )
        out.append(
            sql.SQL("SELECT add_compression_policy({table}, {after}::interval)").format(
                table=sql.Literal(table), after=sql.Literal(settings.compress_after)
            )
        )
    return out


def cagg_statements() -> list[Statement]:
    out: list[Statement] = []
    for timeframe, width, parent in CAGG_LEVELS:
        out.append(sql.SQL(_cagg_sql(timeframe, width, parent)))  # type: ignore[arg-type]
        start, end, every = _POLICIES[timeframe]
        out.append(
            sql.SQL(
                "SELECT add_continuous_aggregate_policy({view}, start_offset => {start}::interval,"
                " end_offset => {end}::interval, schedule_interval => {every}::interval)"
            ).format(
                view=sql.Literal(cagg_name(timeframe)),
                start=sql.Literal(start),
                end=sql.Literal(end),
                every=sql.Literal(every),
            )
        )
    return out


def retention_statements(settings: TimescaleSettings) -> list[Statement]:
    """Bring retention policies in line with the settings (run at every ``init``)."""
    out: list[Statement] = []
    for table, field in RETENTION.items():
        keep = getattr(settings, field)
        out.append(
            sql.SQL("SELECT remove_retention_policy({table}, if_exists => true)").format(
                table=sql.Literal(table)
            )
        )
        if keep is not None:
            out.append(
                sql.SQL(
                    "SELECT add_retention_policy({table}, drop_after => {keep}::interval)"
                ).format(table=sql.Literal(table), keep=sql.Literal(keep))
            )
    return out
