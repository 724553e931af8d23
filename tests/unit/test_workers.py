"""``tickvault run --workers``: sharding by symbol, spill adoption, each worker's own gaps, and
the tallies the parent merges (the processes themselves: tests/e2e/test_run_workers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tickvault.config import FeedSettings, RepairSettings, Settings
from tickvault.errors import UsageError
from tickvault.runner.app import RunOptions
from tickvault.runner.repair import GapRepairer
from tickvault.runner.spill import adopt_spills, worker_spill_dir
from tickvault.runner.tally import Tally, latency_ms, merge
from tickvault.runner.workers import Workers, shard_feeds
from tickvault.storage.postgres.records import GapRecord


def feed(exchange: str, symbols: list[str], channels: list[str] | None = None) -> FeedSettings:
    return FeedSettings(exchange=exchange, symbols=symbols, channels=channels or ["trades"])  # type: ignore[arg-type]


def symbols_of(shard: list[FeedSettings]) -> dict[str, list[str]]:
    return {f.exchange: f.symbols for f in shard}


def test_every_exchange_of_a_symbol_lands_in_the_same_shard() -> None:
    feeds = [
        feed("binance", ["BTC-USDT", "ETH-USDT", "SOL-USDT"]),
        feed("coinbase", ["BTC-USDT", "ETH-USDT"]),
        feed("kraken", ["ETH-USDT", "SOL-USDT"]),
    ]
    shards = shard_feeds(feeds, 3)
    assert len(shards) == 3
    owner: dict[str, int] = {}
    for i, shard in enumerate(shards):
        for f in shard:
            for symbol in f.symbols:
                assert owner.setdefault(symbol, i) == i, f"{symbol} split across workers"
    # Each (exchange, symbol) stream exactly once, channels and depth kept.
    streams = sorted((f.exchange, s) for shard in shards for f in shard for s in f.symbols)
    assert streams == sorted((f.exchange, s) for f in feeds for s in f.symbols)


def test_heaviest_symbols_spread_first_and_empty_shards_are_dropped() -> None:
    feeds = [
        feed("binance", ["BTC-USDT", "ETH-USDT", "DOGE-USDT"], ["trades", "book", "ticker"]),
        feed("coinbase", ["BTC-USDT", "ETH-USDT"], ["trades", "book", "ticker"]),
    ]
    two = shard_feeds(feeds, 2)
    # BTC and ETH (6 streams each) go to different workers; DOGE (3) joins the lighter one.
    assert [symbols_of(s) for s in two] == [
        {"binance": ["BTC-USDT", "DOGE-USDT"], "coinbase": ["BTC-USDT"]},
        {"binance": ["ETH-USDT"], "coinbase": ["ETH-USDT"]},
    ]
    assert two[0][0].channels == ["trades", "book", "ticker"]
    assert len(shard_feeds(feeds, 8)) == 3  # three symbols: three workers at most
    assert shard_feeds(feeds, 1) == [feeds]
    with pytest.raises(ValueError, match=">= 1"):
        shard_feeds(feeds, 0)


def test_spill_files_no_worker_would_replay_are_adopted(tmp_path: Path) -> None:
    root = tmp_path / "spill"
    # Left by a one-process run (root/postgres) and by a 3-worker run (worker-2/redis).
    for folder, name in (("postgres", "0001-0.spill"), ("worker-2/redis", "0002-0.spill"),
                         ("worker-1/postgres", "0003-0.spill")):  # fmt: skip
        (root / folder).mkdir(parents=True)
        (root / folder / name).write_bytes(folder.encode())
    # The same name in the target already: the adopted file keeps both.
    (root / "worker-0/postgres").mkdir(parents=True)
    (root / "worker-0/postgres/0001-0.spill").write_bytes(b"mine")
    keep = [worker_spill_dir(root, 0), worker_spill_dir(root, 1)]

    assert adopt_spills(root, keep) == 2
    assert sorted(p.name for p in (root / "worker-0/postgres").iterdir()) == [
        "0001-0-spill.spill", "0001-0.spill",
    ]  # fmt: skip
    assert (root / "worker-0/postgres/0001-0-spill.spill").read_bytes() == b"postgres"
    assert (root / "worker-0/redis/0002-0.spill").read_bytes() == b"worker-2/redis"
    # A worker of this run keeps its own files.
    assert (root / "worker-1/postgres/0003-0.spill").read_bytes() == b"worker-1/postgres"
    assert not list((root / "postgres").iterdir()) and not list((root / "worker-2/redis").iterdir())
    assert adopt_spills(root, keep) == 0
    assert adopt_spills(tmp_path / "none", keep) == 0
    # One runner again: every worker's files come back under the root.
    assert adopt_spills(root, [root]) == 4
    assert sorted(p.name for p in (root / "postgres").iterdir()) == [
        "0001-0-spill.spill", "0001-0.spill", "0003-0.spill",
    ]  # fmt: skip
    assert [p.name for p in (root / "redis").iterdir()] == ["0002-0.spill"]


def gap(exchange: str, symbol: str) -> GapRecord:
    return GapRecord(1, exchange, symbol, "trades", 0, 1_000, "sequence_gap", 0, "open")


def test_a_worker_repairs_only_the_gaps_of_its_own_markets() -> None:
    sources: Any = {"binance": object(), "kraken": object()}
    gaps = [gap("binance", "BTC-USDT"), gap("binance", "ETH-USDT"), gap("kraken", "ETH-USDT"),
            gap("coinbase", "BTC-USDT")]  # fmt: skip
    now_ns = 10**18
    mine = GapRepairer(None, sources, RepairSettings(), ["1m"],  # type: ignore[arg-type]
                       markets={("binance", "BTC-USDT"), ("kraken", "SOL-USDT")})  # fmt: skip
    assert mine.due(gaps, now_ns) == [gaps[0]]
    every = GapRepairer(None, sources, RepairSettings(), ["1m"])  # type: ignore[arg-type]
    assert every.due(gaps, now_ns) == gaps[:3]  # coinbase: no REST client here


async def test_workers_without_feeds_refuse_before_touching_storage(tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", data_dir=tmp_path)
    with pytest.raises(UsageError, match=r"^no feeds configured: add \[\[feeds\]\]"):
        await Workers(settings, RunOptions(), 2).run()
    assert not list(tmp_path.iterdir())  # no spill folder, no embedded server


def test_tallies_of_workers_add_up() -> None:
    a = Tally(
        elapsed_s=10.0, messages={"binance": 5, "kraken": 2},
        stages={"decode": {"binance": 50}, "write_redis": {"binance": 40}},
        rejected={"binance": 1}, gaps={"kraken": 1},
        rejects={("binance", "validate", "bad_price"): 1}, late_trades={"revised": 2},
        latency_ns={"redis": np.array([1_000_000, 3_000_000])}, footer=["a"],
        sample_stream=("binance", "BTC-USDT"),
    )  # fmt: skip
    b = Tally(
        elapsed_s=10.5, messages={"binance": 7}, stages={"decode": {"binance": 1, "kraken": 9}},
        rejects={("binance", "validate", "bad_price"): 2, ("kraken", "decode", "bad_json"): 1},
        latency_ns={"redis": np.array([2_000_000]), "postgres": np.array([9_000_000])},
        footer=["b"], sample_stream=("binance", "ETH-USDT"),
    )  # fmt: skip
    total = merge([a, b])
    assert total.elapsed_s == 10.5
    assert total.messages == {"binance": 12, "kraken": 2}
    assert total.stages == {"decode": {"binance": 51, "kraken": 9}, "write_redis": {"binance": 40}}
    assert total.rejects == {("binance", "validate", "bad_price"): 3,
                             ("kraken", "decode", "bad_json"): 1}  # fmt: skip
    assert total.rejected == {"binance": 1} and total.gaps == {"kraken": 1}
    assert total.late_trades == {"revised": 2} and total.footer == ["a", "b"]
    assert total.sample_stream == ("binance", "BTC-USDT")
    assert sorted(total.latency_ns["redis"].tolist()) == [1_000_000, 2_000_000, 3_000_000]
    assert latency_ms(total.latency_ns) == {"redis": (2.0, pytest.approx(2.98)),
                                            "postgres": (9.0, 9.0)}  # fmt: skip
    assert total.processes == 2 and merge([total, a]).processes == 3
    assert merge([]) == Tally(processes=0)
