"""columnar.decimal_column: Arrow-side decimal text → decimal128, same result as the Decimal path."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from tickvault.query import _decimal_array
from tickvault.storage.postgres.columnar import decimal_column, to_table, wrap_sql

CASES = [
    ["100.10", "99.5", "0.00012345", None, "-7"],
    ["0", "0.00", None],
    ["-0.5", "-123456789.123456789"],
    ["40000.01", "40001.02"],
    ["12345678901234567890.123456789012345678"],  # exactly 38 digits
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


def test_rows_to_table_and_wrapped_sql() -> None:
    columns = (("ts", "ts"), ("price", "dec"), ("side", "text"), ("n", "int"), ("ok", "bool"))
    table = to_table(columns, [(1_704_067_200_000_001, "1.10", "buy", 3, True)])
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("price").to_pylist() == [Decimal("1.10")]
    assert table.column("ts").cast(pa.int64()).to_pylist() == [1_704_067_200_000_001]
    empty = to_table(columns, [])
    assert empty.num_rows == 0 and empty.schema.names == ["ts", "price", "side", "n", "ok"]
    sql = wrap_sql(columns, "SELECT * FROM t")
    assert sql.startswith("SELECT (extract(epoch FROM ts) * 1000000)::int8, price::text, side,")
