"""columnar.decimal_column: Arrow-side decimal text → decimal128, same result as the Decimal path."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from tickvault.query import _decimal_array
from tickvault.storage.postgres.columnar import decimal_column, decimal_columns, to_table, wrap_sql

CASES = [
    ["100.10", "99.5", "0.00012345", None, "-7"],
    ["0", "0.00", None],
    ["-0.5", "-123456789.123456789"],
    ["40000.01", "40001.02"],
    ["12345678901234567890.123456789012345678"],  # exactly 38 digits
    ["1111111111111111111111111.5", "0.11111111111111111111"],  # 45 digits together: text
    [None, None],
]


@pytest.mark.parametrize("texts", CASES)
def test_same_type_and_values_as_the_decimal_path(texts: list[str | None]) -> None:
    want = _decimal_array([None if t is None else Decimal(t) for t in texts])
    got = decimal_column(pa.array(texts, pa.string()))
    assert got.type == want.type
    assert got.to_pylist() == want.to_pylist()


def test_beyond_decimal128_or_not_finite_stays_exact_text() -> None:
    big = ["123456789012345678901234567890.1234567890", "1.5"]  # 40 digits
    assert decimal_column(pa.array(big)).to_pylist() == big
    assert decimal_column(pa.array(["NaN", "1.5"])).to_pylist() == ["NaN", "1.5"]


def test_values_beyond_38_digits_together_are_never_wrapped() -> None:
    """Arrow's cast wraps a value beyond the precision silently: such columns stay text."""
    big, small = "1111111111111111111111111.5", "0.11111111111111111111"
    got = decimal_columns([pa.array([big, small]), pa.array(["1.5", "2"])])
    assert got[0].to_pylist() == [big, small]
    assert got[1].type == pa.decimal128(2, 1)


def test_rows_to_table_and_wrapped_sql() -> None:
    columns = (("ts", "ts"), ("price", "dec"), ("side", "text"), ("n", "int"), ("ok", "bool"))
    table = to_table(columns, [(1_704_067_200_000_001, "1.10", "buy", 3, True)])
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("price").to_pylist() == [Decimal("1.10")]
    assert table.column("ts").cast(pa.int64()).to_pylist() == [1_704_067_200_000_001]
    empty = to_table(columns, [])
    assert empty.num_rows == 0 and empty.schema.names == ["ts", "price", "side", "n", "ok"]
    sql = wrap_sql(columns, "SELECT * FROM t")
    assert sql.startswith("SELECT CASE WHEN ts < '2100-01-01' THEN round(date_part(")
    assert ", price::text, side, n, ok FROM (SELECT * FROM t) wire" in sql


def test_columns_batched_equal_one_at_a_time() -> None:
    rows = 3
    texts = [pa.array((case * 3)[:rows], pa.string()) for case in CASES[:-2]] + [
        pa.array([None] * rows, pa.string()),
        pa.array(["1.5", "2", "-0.25"], pa.string()),
    ]
    got = decimal_columns(texts)
    for text, column in zip(texts, got, strict=True):
        want = decimal_column(text)
        assert column.type == want.type and column.to_pylist() == want.to_pylist()
    # a shared cast cannot hold 20 integer digits beside 18-digit scales: one column at a time
    wide = [pa.array(["12345678901234567890", "1"]), pa.array(["0.123456789012345678", "1"])]
    assert [c.to_pylist() for c in decimal_columns(wide)] == [
        [Decimal("12345678901234567890"), Decimal("1")],
        [Decimal("0.123456789012345678"), Decimal("1.000000000000000000")],
    ]
    assert decimal_columns([pa.array(["NaN", "1"]), pa.array(["1", "2"])])[0].to_pylist() == [
        "NaN",
        "1",
    ]


def test_no_gc_pauses_and_restores_the_collector() -> None:
    import gc

    from tickvault.storage.postgres.columnar import no_gc

    assert gc.isenabled()
    with pytest.raises(ValueError), no_gc():
        assert not gc.isenabled()
        raise ValueError("a failed read")
    assert gc.isenabled()
    gc.disable()
    try:
        with no_gc():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_decimal_text_in_exponent_form_converts_exactly() -> None:
    """A Decimal's ``str`` below 1e-6 has an exponent (``1E-7``), as cached JSON carries it:
    it is written out positionally first (its scale is then read as PostgreSQL prints it)."""
    from decimal import Decimal

    import pyarrow as pa

    from tickvault.storage.postgres import columnar

    texts = [pa.array(["1E-7", "0.5", None, "0E-8"]), pa.array(["1", "2.25", "3", "-2.5E-9"])]
    first, second = columnar.decimal_columns(texts)
    assert first.type == pa.decimal128(9, 8) and second.type == pa.decimal128(11, 10)
    assert first.to_pylist() == [Decimal("1E-7"), Decimal("0.5"), None, Decimal(0)]
    assert second.to_pylist()[-1] == Decimal("-2.5E-9")
    assert columnar.decimal_column(pa.array(["1.0E-7", "12.25"])).type == pa.decimal128(10, 8)
    plain = pa.array(["1.5", None])
    assert columnar.plain_text(plain) is plain  # PostgreSQL's text: untouched
