"""Throughput of the pure pipeline stages on synthetic trades, against a copy baseline.

Run: ``.venv/bin/python -m bench.stages [--trades 200000] [--batch 1000]``

Prints events/s of (1) the baseline — iterating the same events and copying them into a new
list, batch by batch — and (2) validate + derive candles (six timeframes), and their ratio.
Both are measured in the same run on the same events, so the ratio travels between machines.

With ``--capture DIR`` (files written by ``bench.sim_capture``) it replays what the runner
receives instead and prints the CPU time of each step per message or per event: the feeds'
decoding per exchange, then the runner's :class:`Stages` (validation, quality, transform) and
the PostgreSQL COPY text and Redis encodings of their output (see :mod:`bench.stage_replay`).
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal
from pathlib import Path

from tickvault.model import NS_PER_S, Side, Trade
from tickvault.pipeline.candles import CandleDeriver
from tickvault.pipeline.validate import Validator

MARKETS = [
    (exchange, symbol)
    for exchange in ("binance", "coinbase", "kraken")
    for symbol in ("BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")
]
START_NS = 1_733_140_800 * NS_PER_S


def synthetic_trades(count: int, seed: int = 7) -> list[Trade]:
    """Random-walk trades spread over the markets, about 200 a second in all."""
    rng = random.Random(seed)
    symbols = sorted({symbol for _, symbol in MARKETS})
    prices = {symbol: 100.0 * (i + 1) for i, symbol in enumerate(symbols)}
    next_id = dict.fromkeys(MARKETS, 1_000_000)
    trades: list[Trade] = []
    ts_ns = START_NS
    for _ in range(count):
        market = MARKETS[rng.randrange(len(MARKETS))]
        prices[market[1]] *= 1 + rng.gauss(0, 0.0005)
        price = prices[market[1]] * (1 + rng.gauss(0, 0.0002))  # venues differ a little
        ts_ns += rng.randrange(1, 10_000_000)
        trade_id = next_id[market]
        next_id[market] = trade_id + 1
        trades.append(
            Trade(
                market[0],
                market[1],
                str(trade_id),
                Decimal(f"{price:.2f}"),
                Decimal(f"{rng.uniform(0.0001, 2):.8f}"),
                Side.BUY if rng.random() < 0.5 else Side.SELL,
                ts_ns,
                ts_ns + rng.randrange(1_000_000, 50_000_000),
            )
        )
    return trades


def baseline(batches: list[list[Trade]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        copied: list[Trade] = []
        append = copied.append
        for trade in batch:
            append(trade)
    return time.perf_counter() - start


def validate_and_derive(batches: list[list[Trade]]) -> tuple[float, int, int]:
    validator = Validator()
    deriver = CandleDeriver()
    accepted = closed = 0
    start = time.perf_counter()
    for batch in batches:
        now_ns = batch[-1].recv_ns
        result = validator.validate(batch, now_ns)
        out = deriver.add_trades(result.accepted)  # type: ignore[arg-type]
        accepted += len(result.accepted)
        closed += len(out.closed)
    return time.perf_counter() - start, accepted, closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--capture", type=Path, help="replay a bench.sim_capture folder")
    parser.add_argument("--rounds", type=int, default=3, help="replay rounds (best is shown)")
    args = parser.parse_args()
    if args.capture is not None:
        from bench.stage_replay import replay_report

        print(replay_report(args.capture, args.rounds))
        return
    trades = synthetic_trades(args.trades)
    batches = [trades[i : i + args.batch] for i in range(0, len(trades), args.batch)]
    base_s = min(baseline(batches) for _ in range(3))
    stage_s, accepted, closed = validate_and_derive(batches)
    count = len(trades)
    print(
        f"trades: {count:,} in batches of {args.batch}; accepted {accepted:,}; closed bars {closed:,}"
    )
    print(f"baseline (iterate + copy): {count / base_s:>14,.0f} events/s")
    print(f"validate + derive (6 tf):  {count / stage_s:>14,.0f} events/s")
    print(f"ratio stage/baseline time: {stage_s / base_s:,.1f}x")


if __name__ == "__main__":
    main()
