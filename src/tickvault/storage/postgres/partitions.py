"""Native range partitioning for plain PostgreSQL (TimescaleDB makes chunks by itself).

Partitions are epoch-aligned slices of ``interval_s`` seconds (a "1 day" interval gives UTC
days; "7 days" gives weeks starting Thursdays, as TimescaleDB's chunks do). The interval of each
table is fixed at ``tickvault init`` and stored in ``tv_partitioning``, so changing the settings
later never produces overlapping bounds. Every partition is listed in ``tv_partitions`` with its
range: creation on demand and retention both work from that list, not from parsing catalog text.

There is no DEFAULT partition on purpose: a row outside every partition fails loudly (and the
writer then creates the partition and retries) instead of piling up where retention and new
partitions cannot reach it.
"""

from __future__ import annotations

from datetime import UTC, datetime

PARTITION_SQL = """
CREATE TABLE tv_partitioning (
    parent      text PRIMARY KEY,
    interval_s  bigint NOT NULL CHECK (interval_s >= 3600)
);
CREATE TABLE tv_partitions (
    name         text PRIMARY KEY,
    parent       text NOT NULL REFERENCES tv_partitioning (parent),
    range_start  timestamptz NOT NULL,
    range_end    timestamptz NOT NULL,
    UNIQUE (parent, range_start)
);

-- Create the partitions of p_parent holding each of p_times (any instants; realigned here).
CREATE FUNCTION tv_ensure_partitions(p_parent text, p_times timestamptz[]) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    step_s bigint;
    t timestamptz;
    lo timestamptz;
    hi timestamptz;
    pname text;
    created integer := 0;
BEGIN
    SELECT interval_s INTO step_s FROM tv_partitioning WHERE parent = p_parent;
    IF step_s IS NULL THEN
        RAISE EXCEPTION 'table % is not partitioned by tickvault', p_parent;
    END IF;
    -- Two writers creating the same partition would race on CREATE TABLE: serialize per table.
    PERFORM pg_advisory_xact_lock(hashtext('tv_partitions:' || p_parent));
    FOREACH t IN ARRAY p_times LOOP
        lo := date_bin(make_interval(secs => step_s), t, TIMESTAMPTZ '1970-01-01 00:00:00+00');
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM tv_partitions WHERE parent = p_parent AND range_start = lo);
        hi := lo + make_interval(secs => step_s);
        pname := p_parent || '_p' || to_char(lo AT TIME ZONE 'UTC',
            CASE WHEN step_s % 86400 = 0 THEN 'YYYYMMDD' ELSE 'YYYYMMDD"T"HH24MI' END);
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       pname, p_parent, lo, hi);
        INSERT INTO tv_partitions (name, parent, range_start, range_end)
            VALUES (pname, p_parent, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;

-- Every partition of p_parent overlapping [p_from, p_to).
CREATE FUNCTION tv_ensure_partition_range(p_parent text, p_from timestamptz, p_to timestamptz)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    step_s bigint;
BEGIN
    SELECT interval_s INTO step_s FROM tv_partitioning WHERE parent = p_parent;
    IF p_to <= p_from THEN RETURN 0; END IF;
    RETURN tv_ensure_partitions(p_parent, ARRAY(
        SELECT generate_series(
            date_bin(make_interval(secs => step_s), p_from, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
            p_to - interval '1 microsecond', make_interval(secs => step_s))));
END
$fn$;

-- Retention: drop whole partitions that end at or before p_before; returns their names.
CREATE FUNCTION tv_drop_partitions_before(p_parent text, p_before timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tv_partitions:' || p_parent));
    FOR r IN SELECT name FROM tv_partitions
             WHERE parent = p_parent AND range_end <= p_before ORDER BY range_start LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', r.name);
        DELETE FROM tv_partitions WHERE name = r.name;
        RETURN NEXT r.name;
    END LOOP;
END
$fn$;
"""

# How far ahead ``maintain`` creates partitions, in partitions per table.
AHEAD_PARTITIONS = 3


def partition_start_us(ts_us: int, interval_s: int) -> int:
    """Start (µs since epoch) of the partition holding ``ts_us``: same rule as the SQL."""
    step = interval_s * 1_000_000
    return ts_us - ts_us % step


def us_to_datetime(ts_us: int) -> datetime:
    seconds, micros = divmod(ts_us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
