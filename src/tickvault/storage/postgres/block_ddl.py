"""Schema version 3: ``candle_blocks``, the columnar cache of candle reads inside PostgreSQL.

A block is ``BARS_PER_BLOCK`` consecutive bars of one stream (exchange, symbol, timeframe),
aligned to the Unix epoch: 1m → one UTC day, 1s → 24 minutes, 5m → 5 days, 1h → 60 days,
1d → 1,440 days, 1w → 1,440 weeks. Its ``frame`` is the result of the uncached read of the
block (selection rule, columns and types of ``Vault.candles``) as Arrow IPC
(``candle_frames.py``); ``candle_blocks.py`` reads and builds them.

Never stale: every change to ``candles`` marks the blocks it touches *in its own transaction*,
by statement-level triggers with transition tables — one ``INSERT .. ON CONFLICT`` into
``candle_blocks`` per statement, grouped by block, whatever the row count — so every write path
is covered: the writer's COPY and staged upsert, the derived candle refresh, gap repair (which
goes through both), and SQL typed by hand. TRUNCATE marks every block; the partition drop of
retention marks the dropped range.

TimescaleDB: the table and functions are created (one schema for both modes) but no trigger,
and ``Vault`` reads uncached there. Hypertables refuse transition tables; a row-level AFTER
INSERT trigger is refused on inserts into compressed chunks (timescale/timescaledb#3236: a
backfill into old candles would fail), and deleting a whole compressed segment builds no
per-row change (#7574), so a mark could not be guaranteed. Continuous-aggregate bars also
change when a refresh job materializes late trades, outside any transaction of ours: caching
them would need blocks the aggregate cannot reach (all 1,440 slots filled by stored bars).
Left for a version that can test against the extension.

A mark sets ``dirty_from`` to the earliest open time changed (``least`` with an earlier mark):
the frame's rows before it are still right, the rest is read again. Marking always *writes* the
block's row (inserting it when absent): that is what lets a reader's snapshot-based store detect
a concurrent writer (``candle_blocks.py``).

Writes straight into a partition (``candles_p20240101``) bypass the parent's statement triggers
and are not marked: write through ``candles``.
"""

from __future__ import annotations

from tickvault.model import TIMEFRAMES

BARS_PER_BLOCK = 1440

BLOCK_TABLE = """
CREATE TABLE candle_blocks (
    exchange     text NOT NULL,
    symbol       text NOT NULL,
    timeframe    text NOT NULL,
    block_start  timestamptz NOT NULL,
    frame        bytea,           -- Arrow IPC stream (LZ4); NULL: not built
    rows         integer,
    layout       smallint,        -- candle_frames.FRAME_FORMAT of the frame
    dirty_from   timestamptz,     -- bars opening at or after it changed since the build
    built_at     timestamptz,
    marked_at    timestamptz,
    PRIMARY KEY (exchange, symbol, timeframe, block_start)
);
-- The frame is compressed already: no pglz attempt on write, no decompression on read.
ALTER TABLE candle_blocks ALTER COLUMN frame SET STORAGE EXTERNAL;
"""


def _block_functions() -> str:
    # Timeframes tickvault knows (model.TIMEFRAMES); a new one needs a migration that replaces
    # tv_candle_block_span. Unknown timeframes give NULL: never cached, never marked.
    steps = " ".join(f"WHEN '{tf}' THEN {seconds}" for tf, seconds in TIMEFRAMES.items())
    return f"""
CREATE FUNCTION tv_candle_block_span(p_timeframe text) RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $fn$ SELECT make_interval(secs => (CASE p_timeframe {steps} END) * {BARS_PER_BLOCK}) $fn$;
CREATE FUNCTION tv_candle_block_start(p_timeframe text, p_ts timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $fn$ SELECT date_bin(tv_candle_block_span(p_timeframe), p_ts,
                            TIMESTAMPTZ '1970-01-01 00:00:00+00') $fn$;
"""


_MARK_FROM = """
    INSERT INTO candle_blocks AS b (exchange, symbol, timeframe, block_start, dirty_from, marked_at)
    SELECT exchange, symbol, timeframe, block, min(ts), now()
    FROM (SELECT exchange, symbol, timeframe, ts, tv_candle_block_start(timeframe, ts) AS block
          FROM {rows}) c
    WHERE block IS NOT NULL
    GROUP BY exchange, symbol, timeframe, block
    ORDER BY exchange, symbol, timeframe, block
    ON CONFLICT (exchange, symbol, timeframe, block_start) DO UPDATE
    SET dirty_from = least(b.dirty_from, EXCLUDED.dirty_from), marked_at = EXCLUDED.marked_at;
"""
_CHANGED = "(SELECT exchange, symbol, timeframe, ts FROM {}) r"
_UPDATED = (
    "(SELECT exchange, symbol, timeframe, ts FROM old_rows UNION ALL"
    " SELECT exchange, symbol, timeframe, ts FROM new_rows) r"
)

PLAIN_TRIGGERS = f"""
CREATE FUNCTION tv_mark_candle_blocks() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_MARK_FROM.format(rows=_CHANGED.format("new_rows"))}
    ELSIF TG_OP = 'DELETE' THEN
        {_MARK_FROM.format(rows=_CHANGED.format("old_rows"))}
    ELSIF TG_OP = 'UPDATE' THEN
        {_MARK_FROM.format(rows=_UPDATED)}
    ELSE  -- TRUNCATE
        UPDATE candle_blocks SET dirty_from = block_start, marked_at = now();
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER candles_mark_insert AFTER INSERT ON candles REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tv_mark_candle_blocks();
CREATE TRIGGER candles_mark_update AFTER UPDATE ON candles
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tv_mark_candle_blocks();
CREATE TRIGGER candles_mark_delete AFTER DELETE ON candles REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tv_mark_candle_blocks();
CREATE TRIGGER candles_mark_truncate AFTER TRUNCATE ON candles
    FOR EACH STATEMENT EXECUTE FUNCTION tv_mark_candle_blocks();
"""

# Retention by partition drop (plain PostgreSQL) marks the blocks of a dropped candles range.
# DROP TABLE waits for readers holding the partition (a reader's build keeps its lock to the
# end of its transaction), so a frame built from the dropped rows is stored before this mark.
DROP_PARTITIONS_MARKING = """
CREATE OR REPLACE FUNCTION tv_drop_partitions_before(p_parent text, p_before timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tv_partitions:' || p_parent));
    FOR r IN SELECT name, range_start, range_end FROM tv_partitions
             WHERE parent = p_parent AND range_end <= p_before ORDER BY range_start LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', r.name);
        DELETE FROM tv_partitions WHERE name = r.name;
        IF p_parent = 'candles' THEN
            UPDATE candle_blocks
            SET dirty_from = least(dirty_from, greatest(block_start, r.range_start)),
                marked_at = now()
            WHERE block_start < r.range_end
              AND block_start + tv_candle_block_span(timeframe) > r.range_start;
        END IF;
        RETURN NEXT r.name;
    END LOOP;
END
$fn$;
"""


def migration_sql(timescaledb: bool) -> str:
    """The whole of schema version 3 for one storage mode."""
    if timescaledb:  # no triggers: not cached (module docstring)
        return BLOCK_TABLE + _block_functions()
    return BLOCK_TABLE + _block_functions() + PLAIN_TRIGGERS + DROP_PARTITIONS_MARKING
