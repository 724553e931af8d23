"""Larger, realistic message streams for the replay benchmark, built from the real fixtures.

Every stream is a capture (``exchanges/capture.py`` format) that starts with the exchange's
recorded instrument list, so both tickvault and cryptofeed can read it offline:

* **Binance**: the 2021-10-12 recording (4 symbols: diff depth, bookTicker, kline, aggTrade and
  the four REST depth snapshots) repeated; each repetition shifts update ids (``U``/``u``),
  aggregate trade ids and event times, so the diff-depth sequence stays continuous and every
  book check passes across the whole stream.
* **Kraken** (WebSocket v1, the protocol cryptofeed speaks): the recorded XBT/USD ``book-10``
  snapshot evolved by a seeded random walk in the recording's own patterns (size changes, new
  levels pushing the 10th out, deletes followed by the republished next level with ``"r"``),
  each update carrying Kraken's CRC32 computed here from the published algorithm; plus trades
  and tickers in the recorded v1 layouts.
* **Coinbase** (Advanced Trade, what cryptofeed speaks): a BTC-USD ``l2_data`` snapshot around
  the recorded product price, then level updates (changes, deletes, inserts, never crossing) and
  ``market_trades``, in the layout of the recorded SOL-USD session, with a continuous
  ``sequence_num``.
"""

from __future__ import annotations

import json
import random
import zlib
from decimal import Decimal
from pathlib import Path

from tickvault.exchanges.capture import CaptureRecord, read_capture, write_capture

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures"


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- Binance ----------------------------------------------------------------------------


def _binance_restore(
    snapshot: str, diffs: list[dict[str, object]]
) -> tuple[dict[str, str], dict[str, str]]:
    """Levels that bring a book from its state after ``diffs`` back to ``snapshot``'s."""
    start = json.loads(snapshot)
    restore: tuple[dict[str, str], dict[str, str]] = ({}, {})
    for side, key in ((0, "bids"), (1, "asks")):
        initial = {Decimal(p): q for p, q in start[key]}
        state = dict(initial)
        texts = {Decimal(p): p for p, _ in start[key]}
        for diff in diffs:
            for price, size in diff["b" if side == 0 else "a"]:  # type: ignore[attr-defined]
                texts.setdefault(Decimal(price), price)
                if Decimal(size) == 0:
                    state.pop(Decimal(price), None)
                else:
                    state[Decimal(price)] = size
        for price in set(state) | set(initial):
            if state.get(price) != initial.get(price):
                restore[side][texts[price]] = initial.get(price, "0.00000000")
    return restore


def binance_stream(messages: int) -> list[CaptureRecord]:
    """The recording, then repetitions of its messages. Replayed diffs would drift the book
    (the recording's prices moved), so each repetition ends with one diff event per symbol that
    restores the book to its state after the REST snapshot: every repetition then rebuilds the
    recorded books exactly, with continuous update ids and no crossed book."""
    records = list(read_capture(FIXTURES / "binance" / "recording_2021-10-12.jsonl.gz"))
    info, body = records[0], records[1:]
    snapshots = {r.url.split("symbol=")[1].split("&")[0]: r.raw for r in body if r.kind == "rest"}
    last_ids = {s: json.loads(raw)["lastUpdateId"] for s, raw in snapshots.items()}
    ws = [(r, json.loads(r.raw)) for r in body if r.kind == "ws"]
    applied: dict[str, list[dict[str, object]]] = {s: [] for s in snapshots}
    trades = 0
    for _, message in ws:
        data = message["data"]
        if data.get("e") == "depthUpdate" and data["u"] > last_ids[data["s"]]:
            applied[data["s"]].append(data)
        elif data.get("e") == "aggTrade":
            trades += 1
    # ids: cycle k shifts by k * (span + 1); the restoring event takes the id after the span
    spans = {s: d[-1]["u"] - d[0]["U"] + 1 for s, d in applied.items()}  # type: ignore[operator]
    restore = {s: _binance_restore(snapshots[s], d) for s, d in applied.items()}
    duration_ns = body[-1].ts_ns - body[0].ts_ns + 100_000_000
    url = ws[0][0].url
    out = [info, *body]
    cycle = 0
    while len(out) - 5 < messages:  # 1 instrument list + 4 REST snapshots
        end_ns = body[-1].ts_ns + cycle * duration_ns
        for symbol, (bids, asks) in sorted(restore.items()):
            first = applied[symbol][-1]["u"] + cycle * (spans[symbol] + 1) + 1  # type: ignore[operator]
            data = {"e": "depthUpdate", "E": end_ns // 1_000_000, "s": symbol, "U": first,
                    "u": first, "b": [[p, q] for p, q in bids.items()],
                    "a": [[p, q] for p, q in asks.items()]}  # fmt: skip
            raw = _dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data})
            out.append(CaptureRecord(end_ns, "binance", "ws", url, raw))
        cycle += 1
        for record, message in ws:
            data = dict(message["data"])
            symbol = data.get("s", "")
            shift = cycle * (spans[symbol] + 1) if symbol in spans else 0
            if data.get("e") == "depthUpdate":
                if data["u"] <= last_ids[symbol]:
                    continue  # was older than the snapshot: not part of the repetition
                data["U"] += shift
                data["u"] += shift
            elif "A" in data and "u" in data:  # bookTicker
                data["u"] += shift
            elif data.get("e") == "aggTrade":
                for key in ("a", "f", "l"):
                    data[key] += cycle * trades
            for key in ("E", "T"):
                if key in data:
                    data[key] += cycle * duration_ns // 1_000_000
            raw = _dumps({"stream": message["stream"], "data": data})
            out.append(CaptureRecord(record.ts_ns + cycle * duration_ns, "binance", "ws", url, raw))
    return _contiguous_agg_ids(out[: messages + 5])


def _contiguous_agg_ids(records: list[CaptureRecord]) -> list[CaptureRecord]:
    """Number each symbol's aggregate trades one by one: the recording holds only some of a
    symbol's trades, and a jump in ids is a sequence gap for tickvault (a live stream has none)."""
    next_id: dict[str, int] = {}
    out = []
    for record in records:
        if record.kind == "ws" and '"e":"aggTrade"' in record.raw:
            message = json.loads(record.raw)
            data = message["data"]
            data["a"] = next_id.get(data["s"], data["a"])
            next_id[data["s"]] = data["a"] + 1
            record = CaptureRecord(record.ts_ns, "binance", "ws", record.url, _dumps(message))
        out.append(record)
    return out


# --- Kraken v1 --------------------------------------------------------------------------


def kraken_checksum(asks: list[list[str]], bids: list[list[str]]) -> int:
    """Kraken's book checksum (v1): CRC32 of the top 10 asks (ascending) then the top 10 bids
    (descending), each price and volume with the dot removed and leading zeros stripped."""
    text = "".join(
        level[0].replace(".", "").lstrip("0") + level[1].replace(".", "").lstrip("0")
        for level in (*asks[:10], *bids[:10])
    )
    return zlib.crc32(text.encode())


class _KrakenBook:
    """The exchange's side of a book-10 subscription: a deeper book, of which the top 10 is
    what subscribers see."""

    def __init__(self, snapshot: dict[str, list[list[str]]], rng: random.Random) -> None:
        self.rng = rng
        self.side = {"a": {Decimal(p): (v, t) for p, v, t in snapshot["as"]},
                     "b": {Decimal(p): (v, t) for p, v, t in snapshot["bs"]}}  # fmt: skip
        for key in "ab":
            self.refill(key, "1557070780.000000")

    def refill(self, key: str, now: str) -> None:
        """Keep 20 hidden levels below the visible 10 (the exchange's deeper book)."""
        sign = 1 if key == "a" else -1
        while len(self.side[key]) < 30:
            worst = max(self.side[key]) if key == "a" else min(self.side[key])
            price = worst + sign * Decimal("0.1") * self.rng.randint(1, 3)
            self.side[key][price] = (self.volume(), now)

    def volume(self) -> str:
        return f"{self.rng.randint(1, 900_000_000) / 1e8:.8f}"

    def top(self, key: str, count: int = 10) -> list[Decimal]:
        return sorted(self.side[key], reverse=key == "b")[:count]

    def levels(self, key: str) -> list[list[str]]:
        return [[f"{p:.5f}", self.side[key][p][0]] for p in self.top(key)]

    def update(self, now: str) -> tuple[str, list[list[str]]]:
        key = self.rng.choice("ab")
        self.refill(key, now)
        top = self.top(key)
        roll = self.rng.random()
        if roll < 0.55:  # a visible level changes size
            price = self.rng.choice(top)
            self.side[key][price] = (self.volume(), now)
            return key, [[f"{price:.5f}", self.side[key][price][0], now]]
        if roll < 0.8:  # a visible level goes; the 11th becomes visible ("r": republished)
            price = self.rng.choice(top)
            del self.side[key][price]
            tenth = self.top(key)[9]
            level = self.side[key][tenth]
            return key, [[f"{price:.5f}", "0.00000000", now], [f"{tenth:.5f}", *level, "r"]]
        # a new level inside the visible range, never crossing the other side
        other = self.top("b" if key == "a" else "a", 1)[0]
        sign = 1 if key == "a" else -1
        for _ in range(20):
            price = top[0] + sign * Decimal("0.1") * self.rng.randint(-1, 12)
            if price not in self.side[key] and (price - other) * sign > 0:
                break
        else:
            price = top[-1]
        self.side[key][price] = (self.volume(), now)
        return key, [[f"{price:.5f}", self.side[key][price][0], now]]


def kraken_stream(messages: int, seed: int = 7) -> list[CaptureRecord]:
    rng = random.Random(seed)
    pairs = next(read_capture(FIXTURES / "kraken" / "rest_asset_pairs.jsonl"))
    snapshot_record = next(read_capture(FIXTURES / "kraken" / "ws_v1_book_xbtusd.jsonl"))
    channel, snapshot, name, pair = json.loads(snapshot_record.raw)
    book = _KrakenBook(snapshot, rng)
    url, ts_ns = snapshot_record.url, snapshot_record.ts_ns
    out = [pairs, snapshot_record]
    trade_id = 0
    while len(out) - 1 < messages:
        ts_ns += rng.randint(1, 40) * 1_000_000
        now = f"{ts_ns / 1e9:.6f}"
        roll = rng.random()
        if roll < 0.75:
            key, levels = book.update(now)
            checksum = kraken_checksum(book.levels("a"), book.levels("b"))
            payload: object = [channel, {key: levels, "c": str(checksum)}, name, pair]
        elif roll < 0.95:
            trade_id += 1
            side = rng.choice("bs")
            price = book.top("a" if side == "b" else "b", 1)[0]
            trades = [[f"{price:.5f}", book.volume(), now, side, rng.choice("lm"), ""]
                      for _ in range(rng.randint(1, 3))]  # fmt: skip
            payload = [channel + 1, trades, "trade", pair]
        else:
            (ask,), (bid,) = book.top("a", 1), book.top("b", 1)
            ticker = {
                "a": [f"{ask:.5f}", 1, book.side["a"][ask][0]],
                "b": [f"{bid:.5f}", 2, book.side["b"][bid][0]],
                "c": [f"{bid:.5f}", "0.01000000"], "v": ["1234.50000000", "4321.12345678"],
                "p": ["5702.13211", "5699.99122"], "t": [4321, 9876],
                "l": ["5650.00000", "5601.20000"], "h": ["5730.00000", "5730.00000"],
                "o": ["5688.80000", "5670.10000"],
            }  # fmt: skip
            payload = [channel + 2, ticker, "ticker", pair]
        out.append(CaptureRecord(ts_ns, "kraken", "ws", url, _dumps(payload)))
    return out


# --- Coinbase Advanced ------------------------------------------------------------------


def _rfc3339(ts_ns: int) -> str:
    import datetime as dt

    seconds, fraction = divmod(ts_ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def coinbase_stream(messages: int, seed: int = 11) -> list[CaptureRecord]:
    rng = random.Random(seed)
    products = next(
        r for r in read_capture(FIXTURES / "coinbase" / "rest.jsonl") if "/market/products" in r.url
    )
    session = next(read_capture(FIXTURES / "coinbase" / "advanced_ws_sol_session.jsonl"))
    mid = Decimal(json.loads(products.raw)["products"][0]["price"])
    cent = Decimal("0.01")
    sides: dict[str, dict[Decimal, str]] = {
        "bid": {mid - cent * i: f"{rng.randint(1, 10**9) / 1e8:.8f}" for i in range(1, 51)},
        "offer": {mid + cent * i: f"{rng.randint(1, 10**9) / 1e8:.8f}" for i in range(0, 50)},
    }
    url, ts_ns, sequence = session.url, session.ts_ns, 0

    def envelope(channel: str, events: list[object]) -> CaptureRecord:
        nonlocal sequence
        raw = _dumps({"channel": channel, "client_id": "", "timestamp": _rfc3339(ts_ns),
                      "sequence_num": sequence, "events": events})  # fmt: skip
        sequence += 1
        return CaptureRecord(ts_ns, "coinbase", "ws", url, raw)

    def level(side: str, price: Decimal, size: str) -> dict[str, str]:
        return {"side": side, "event_time": _rfc3339(ts_ns - 20_000_000),
                "price_level": str(price), "new_quantity": size}  # fmt: skip

    snapshot = [level(s, p, q) for s in ("bid", "offer") for p, q in sorted(sides[s].items())]
    out = [products, envelope("l2_data", [{"type": "snapshot", "product_id": "BTC-USD",
                                           "updates": snapshot}])]  # fmt: skip
    trade_id = 355495415
    while len(out) - 1 < messages:
        ts_ns += rng.randint(1, 30) * 1_000_000
        if rng.random() < 0.8:
            changes = []
            for _ in range(rng.randint(1, 3)):
                side = rng.choice(("bid", "offer"))
                book = sides[side]
                best_other = (min if side == "bid" else max)(
                    sides["offer" if side == "bid" else "bid"]
                )
                roll = rng.random()
                if roll < 0.5 or len(book) < 20:  # change or insert near the top
                    sign = -1 if side == "bid" else 1
                    best = (max if side == "bid" else min)(book)
                    price = best + sign * cent * rng.randint(-1, 30)
                    if (price - best_other) * sign <= 0:
                        price = best
                    book[price] = size = f"{rng.randint(1, 10**9) / 1e8:.8f}"
                else:
                    price = rng.choice(list(book))
                    del book[price]
                    size = "0"
                changes.append(level(side, price, size))
            event = {"type": "update", "product_id": "BTC-USD", "updates": changes}
            out.append(envelope("l2_data", [event]))
        else:
            trades = []
            for _ in range(rng.randint(1, 2)):
                trade_id += 1
                side = rng.choice(("BUY", "SELL"))
                price = (min if side == "BUY" else max)(sides["offer" if side == "BUY" else "bid"])
                trades.append({"product_id": "BTC-USD", "trade_id": str(trade_id),
                               "price": str(price), "size": f"{rng.randint(1, 10**8) / 1e8:.8f}",
                               "time": _rfc3339(ts_ns - 5_000_000), "side": side})  # fmt: skip
            out.append(envelope("market_trades", [{"type": "update", "trades": trades}]))
    return out


STREAMS = {"binance": binance_stream, "coinbase": coinbase_stream, "kraken": kraken_stream}


def write_streams(folder: Path, messages: int) -> dict[str, Path]:
    paths = {}
    for name, build in STREAMS.items():
        paths[name] = folder / f"{name}.jsonl"
        write_capture(paths[name], build(messages))
    return paths
