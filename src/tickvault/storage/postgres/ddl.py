"""The schema's SQL, for both storage modes.

Time-series tables (``TIME_SERIES``) are range-partitioned on ``ts`` in plain PostgreSQL and are
hypertables under TimescaleDB; everything else is an ordinary table. The unique index of each
time-series table is its natural key *and* its ``(exchange, symbol, ..., ts DESC)`` read path:
one index to maintain per insert instead of two. For candles ``ts`` is the bar's open time.
"""

from __future__ import annotations

# table -> name of the TimescaleSettings field holding its partition/chunk interval
TIME_SERIES: dict[str, str] = {
    "trades": "trades_chunk",
    "candles": "candles_chunk",
    "book_snapshots": "books_chunk",
    "tickers": "books_chunk",
    "features": "candles_chunk",
}

# table -> name of the TimescaleSettings field holding its retention (None keeps everything)
RETENTION: dict[str, str] = {
    "trades": "retention_trades",
    "book_snapshots": "retention_books",
    "tickers": "retention_books",
}

META_TABLES = """
CREATE TABLE tv_schema_version (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tv_meta (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
"""

TIME_SERIES_TABLES: dict[str, str] = {
    "trades": """
CREATE TABLE trades (
    exchange  text NOT NULL,
    symbol    text NOT NULL,
    ts        timestamptz NOT NULL,
    trade_id  text NOT NULL,
    price     numeric NOT NULL,
    size      numeric NOT NULL,
    side      text NOT NULL CHECK (side IN ('buy', 'sell', 'unknown')),
    recv_ts   timestamptz NOT NULL
)""",
    "candles": """
CREATE TABLE candles (
    exchange      text NOT NULL,
    symbol        text NOT NULL,
    timeframe     text NOT NULL,
    ts            timestamptz NOT NULL,
    source        text NOT NULL CHECK (source IN ('exchange', 'derived')),
    open          numeric NOT NULL,
    high          numeric NOT NULL,
    low           numeric NOT NULL,
    close         numeric NOT NULL,
    volume        numeric NOT NULL,
    closed        boolean NOT NULL,
    event_ts      timestamptz NOT NULL,
    recv_ts       timestamptz NOT NULL,
    trade_count   bigint,
    quote_volume  numeric,
    vwap          numeric,
    buy_volume    numeric,
    sell_volume   numeric
)""",
    "book_snapshots": """
CREATE TABLE book_snapshots (
    exchange    text NOT NULL,
    symbol      text NOT NULL,
    ts          timestamptz NOT NULL,
    recv_ts     timestamptz NOT NULL,
    sequence    bigint,
    checksum    bigint,
    bid_prices  numeric[] NOT NULL,
    bid_sizes   numeric[] NOT NULL,
    ask_prices  numeric[] NOT NULL,
    ask_sizes   numeric[] NOT NULL
)""",
    "tickers": """
CREATE TABLE tickers (
    exchange    text NOT NULL,
    symbol      text NOT NULL,
    ts          timestamptz NOT NULL,
    recv_ts     timestamptz NOT NULL,
    bid_price   numeric,
    bid_size    numeric,
    ask_price   numeric,
    ask_size    numeric,
    last_price  numeric,
    volume_24h  numeric
)""",
    "features": """
CREATE TABLE features (
    exchange   text NOT NULL,
    symbol     text NOT NULL,
    timeframe  text NOT NULL,
    name       text NOT NULL,
    ts         timestamptz NOT NULL,
    value      double precision
)""",
}

# Natural keys, in ON CONFLICT order (the unique indexes put ts DESC for the read path).
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "trades": ("exchange", "symbol", "ts", "trade_id"),
    "candles": ("exchange", "symbol", "timeframe", "ts", "source"),
    "book_snapshots": ("exchange", "symbol", "ts"),
    "tickers": ("exchange", "symbol", "ts"),
    "features": ("exchange", "symbol", "timeframe", "name", "ts"),
}

TIME_SERIES_INDEXES = """
CREATE UNIQUE INDEX trades_key ON trades (exchange, symbol, ts DESC, trade_id);
CREATE UNIQUE INDEX candles_key ON candles (exchange, symbol, timeframe, ts DESC, source);
CREATE UNIQUE INDEX book_snapshots_key ON book_snapshots (exchange, symbol, ts DESC);
CREATE UNIQUE INDEX tickers_key ON tickers (exchange, symbol, ts DESC);
CREATE UNIQUE INDEX features_key ON features (exchange, symbol, timeframe, name, ts DESC);
"""

PLAIN_TABLES = """
CREATE TABLE instruments (
    exchange         text NOT NULL,
    symbol           text NOT NULL,
    exchange_symbol  text NOT NULL,
    base             text NOT NULL,
    quote            text NOT NULL,
    tick_size        numeric,
    lot_size         numeric,
    status           text NOT NULL,
    ws_symbol        text,
    aliases          text[] NOT NULL DEFAULT '{}',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, symbol)
);
CREATE TABLE quarantine (
    id              bigserial PRIMARY KEY,
    exchange        text NOT NULL,
    symbol          text,
    channel         text,
    reason          text NOT NULL,
    detail          text NOT NULL,
    raw             text NOT NULL,
    recv_ts         timestamptz NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
-- A replayed reject is the same reject: keyed on what arrived, when, and why.
CREATE UNIQUE INDEX quarantine_key ON quarantine (exchange, recv_ts, reason, md5(raw));
CREATE INDEX quarantine_by_symbol ON quarantine (exchange, symbol, recv_ts DESC);
CREATE TABLE ingest_checkpoints (
    exchange    text NOT NULL,
    symbol      text NOT NULL,
    kind        text NOT NULL,
    cursor      text,
    since_ts    timestamptz,
    until_ts    timestamptz,
    last_ts     timestamptz,
    done        boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, symbol, kind)
);
CREATE TABLE quality_metrics (
    exchange  text NOT NULL,
    symbol    text NOT NULL,
    metric    text NOT NULL,
    ts        timestamptz NOT NULL,
    value     double precision NOT NULL,
    detail    jsonb,
    PRIMARY KEY (exchange, symbol, metric, ts)
);
CREATE INDEX quality_metrics_by_time ON quality_metrics (exchange, symbol, ts DESC);
CREATE TABLE signals (
    exchange   text NOT NULL,
    symbol     text NOT NULL,
    timeframe  text NOT NULL,
    name       text NOT NULL,
    ts         timestamptz NOT NULL,
    value      double precision,
    side       text,
    detail     jsonb,
    PRIMARY KEY (exchange, symbol, name, timeframe, ts)
);
CREATE INDEX signals_by_time ON signals (exchange, symbol, ts DESC);
CREATE TABLE gaps (
    id           bigserial PRIMARY KEY,
    exchange     text NOT NULL,
    symbol       text NOT NULL,
    channel      text NOT NULL,
    from_ts      timestamptz NOT NULL,
    to_ts        timestamptz NOT NULL,
    reason       text NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'repairing', 'repaired', 'unrepairable')),
    repaired_at  timestamptz,
    detail       text,
    UNIQUE (exchange, symbol, channel, from_ts, to_ts)
);
CREATE INDEX gaps_by_time ON gaps (exchange, symbol, from_ts DESC);
CREATE INDEX gaps_open ON gaps (status) WHERE status <> 'repaired';
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    ts      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    detail  jsonb
);
CREATE INDEX audit_log_by_time ON audit_log (ts DESC);
"""

# first/last by an ORDER BY inside the call: tv_first(price ORDER BY ts, trade_id).
# STRICT state functions with no initial state make the first non-null input the start state.
FIRST_LAST_AGGREGATES = """
CREATE FUNCTION tv_first_state(anyelement, anyelement) RETURNS anyelement
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT $1';
CREATE FUNCTION tv_last_state(anyelement, anyelement) RETURNS anyelement
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT $2';
CREATE AGGREGATE tv_first(anyelement) (SFUNC = tv_first_state, STYPE = anyelement);
CREATE AGGREGATE tv_last(anyelement) (SFUNC = tv_last_state, STYPE = anyelement);
"""

# Derived candles from trades for [p_from, p_to), epoch-aligned like model.bucket_start_ns.
# {ensure} is replaced by the partition-creation call in plain mode (hypertables need none).
REFRESH_FUNCTION = """
CREATE FUNCTION tv_refresh_derived_candles(
    p_timeframe text, p_step_s integer, p_from timestamptz, p_to timestamptz,
    p_exchange text DEFAULT NULL, p_symbol text DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    step interval := make_interval(secs => p_step_s);
    origin constant timestamptz := TIMESTAMPTZ '1970-01-01 00:00:00+00';
    lo timestamptz := date_bin(make_interval(secs => p_step_s), p_from, TIMESTAMPTZ '1970-01-01 00:00:00+00');
    hi timestamptz;
    n bigint;
BEGIN
    hi := date_bin(step, p_to, origin);
    IF hi < p_to THEN hi := hi + step; END IF;
    {ensure}
    INSERT INTO candles AS c (exchange, symbol, timeframe, ts, source, open, high, low, close,
        volume, closed, event_ts, recv_ts, trade_count, quote_volume, vwap, buy_volume,
        sell_volume)
    SELECT t.exchange, t.symbol, p_timeframe, t.bucket, 'derived',
        tv_first(t.price ORDER BY t.ts, t.trade_id), max(t.price), min(t.price),
        tv_last(t.price ORDER BY t.ts, t.trade_id), sum(t.size), t.bucket + step <= now(),
        max(t.ts), max(t.recv_ts), count(*), sum(t.price * t.size),
        CASE WHEN sum(t.size) > 0 THEN round(sum(t.price * t.size) / sum(t.size), 12) END,
        coalesce(sum(t.size) FILTER (WHERE t.side = 'buy'), 0),
        coalesce(sum(t.size) FILTER (WHERE t.side = 'sell'), 0)
    FROM (SELECT tr.*, date_bin(step, tr.ts, origin) AS bucket FROM trades tr
          WHERE tr.ts >= lo AND tr.ts < hi
            AND (p_exchange IS NULL OR tr.exchange = p_exchange)
            AND (p_symbol IS NULL OR tr.symbol = p_symbol)) t
    GROUP BY t.exchange, t.symbol, t.bucket
    ON CONFLICT (exchange, symbol, timeframe, ts, source) DO UPDATE SET
        open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        volume = EXCLUDED.volume, closed = EXCLUDED.closed, event_ts = EXCLUDED.event_ts,
        recv_ts = EXCLUDED.recv_ts, trade_count = EXCLUDED.trade_count,
        quote_volume = EXCLUDED.quote_volume, vwap = EXCLUDED.vwap,
        buy_volume = EXCLUDED.buy_volume, sell_volume = EXCLUDED.sell_volume
    WHERE (c.open, c.high, c.low, c.close, c.volume, c.closed, c.trade_count)
        IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
                          EXCLUDED.volume, EXCLUDED.closed, EXCLUDED.trade_count);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
"""

# Candle partitions only where trade partitions exist: a refresh over a huge range must not
# create thousands of empty partitions.
ENSURE_CANDLE_PARTITIONS = """PERFORM tv_ensure_partition_range('candles',
        greatest(lo, p.range_start), least(hi, p.range_end))
        FROM tv_partitions p WHERE p.parent = 'trades' AND p.range_end > lo AND p.range_start < hi;"""
