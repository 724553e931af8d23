"""Replay raw captures through the same decoders and book builders as the live feeds.

A capture (``exchanges/capture.py``) holds every raw message with its receive time. Replaying it
routes each record by exchange to that exchange's adapter:

* REST answers from the adapter's instruments endpoint give the instruments. Every instrument
  answer in the whole capture is read in a first pass, so they are known before the first
  WebSocket message of their exchange is decoded, wherever they sit in the files. Without any,
  the optional ``instrument_source`` (the stored instruments) is asked; with none at all the
  replay stops with a :class:`UsageError` naming the exchange.
* REST book snapshots (the adapter's ``book_snapshot_request`` endpoint: Binance ``depth``) go to
  ``FeedState.on_rest_snapshot`` for the symbol in the URL; other REST answers are skipped.
* WebSocket messages go to ``FeedState.on_message`` with ``recv_ns`` = the record's ``ts_ns``.
  A WebSocket URL different from the exchange's previous one is a reconnect: ``on_disconnect``
  first, exactly as the live collector does when a connection drops.

One feed per exchange: a capture of several simultaneous connections to one exchange must be
replayed per connection (their URLs would read as reconnects). Nothing here crashes on bad
input: a malformed capture line is counted and reported with ``file:line``; a bad message is a
``DecodeError`` counted by reason. Files are read, and ``time.perf_counter`` is read for the
throughput figure; everything else is the pure exchange code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast
from urllib.parse import parse_qsl, urlsplit

import msgspec

from tickvault.errors import TickvaultError, UsageError
from tickvault.exchanges.base import ExchangeAdapter, FeedOutput, FeedState, get_adapter
from tickvault.exchanges.capture import CaptureRecord
from tickvault.exchanges.capture import _open_text as open_capture
from tickvault.model import Gap, Instrument, MarketEvent

log = logging.getLogger(__name__)

InstrumentSource = Callable[[str], Sequence[Instrument]]
"""Stored instruments of one exchange (e.g. the PostgreSQL ``instruments`` table)."""
EventSink = Callable[[Sequence[MarketEvent | Gap]], None]
Books = dict[str, dict[str, dict[str, list[tuple[str, str]]]]]

# Instrument lists an adapter parses besides its own instruments_request() path: Coinbase's
# parse_instruments also reads the Advanced Trade product list.
EXTRA_INSTRUMENT_PATHS: dict[str, tuple[str, ...]] = {
    "coinbase": ("/api/v3/brokerage/market/products",),
}
MAX_WARNINGS = 50  # per replay; the counters keep counting past it


class _Head(msgspec.Struct):
    """The routing fields of a capture line; ``raw`` is skipped, not copied (first pass)."""

    exchange: str
    kind: str
    url: str


_record_decoder = msgspec.json.Decoder(CaptureRecord)
_head_decoder = msgspec.json.Decoder(_Head)


@dataclass(slots=True)
class ExchangeStats:
    """What the replay of one exchange's records produced."""

    messages: int = 0  # WebSocket messages fed to the decoder
    instrument_records: int = 0
    snapshot_records: int = 0  # REST book snapshots fed to the books
    skipped_records: int = 0  # other REST answers (history pages, Kraken Depth, ...)
    reconnects: int = 0
    instruments: int = 0
    instruments_from: str = ""  # "capture" or "stored"
    events_by_type: dict[str, int] = field(default_factory=dict)
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    gaps_by_reason: dict[str, int] = field(default_factory=dict)
    sequence_gaps: int = 0
    checksum_failures: int = 0
    crossed_books: int = 0
    resyncs: int = 0

    @property
    def events(self) -> int:
        return sum(self.events_by_type.values())

    @property
    def decode_errors(self) -> int:
        return sum(self.errors_by_reason.values())


@dataclass(slots=True)
class ReplayStats:
    """Machine-readable outcome of a replay; the CLI prints it as a table."""

    files: int = 0
    lines: int = 0
    malformed_lines: int = 0  # not a capture record (counted, warned with file:line)
    truncated_lines: int = 0  # a file's unfinished last line (a crash mid-write)
    unknown_exchange_records: int = 0
    elapsed_s: float = 0.0
    exchanges: dict[str, ExchangeStats] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def _sum(self, name: str) -> int:
        return sum(cast(int, getattr(s, name)) for s in self.exchanges.values())

    @property
    def messages(self) -> int:
        return self._sum("messages")

    @property
    def decode_errors(self) -> int:
        return self._sum("decode_errors")

    @property
    def sequence_gaps(self) -> int:
        return self._sum("sequence_gaps")

    @property
    def checksum_failures(self) -> int:
        return self._sum("checksum_failures")

    @property
    def events_by_type(self) -> dict[str, int]:
        return _merge(s.events_by_type for s in self.exchanges.values())

    @property
    def errors_by_reason(self) -> dict[str, int]:
        return _merge(s.errors_by_reason for s in self.exchanges.values())

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _merge(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


@dataclass(slots=True)
class _Line:
    path: Path
    number: int
    record: CaptureRecord


def _snapshot_path(adapter: ExchangeAdapter) -> str | None:
    """The adapter's REST book snapshot path, or None (the venue snapshots on the socket)."""
    probe = Instrument(adapter.name, "PROBE", "PROBE-PROBE", "PROBE", "PROBE")
    request = adapter.book_snapshot_request(probe)
    return None if request is None else request.path


def _tag(event_type: type) -> str:
    tag = getattr(event_type, "__struct_config__", None)
    return str(tag.tag) if tag is not None and tag.tag is not None else event_type.__name__


class _ExchangeReplay:
    """One exchange's feed, its routing rules and its counters."""

    def __init__(
        self,
        adapter: ExchangeAdapter,
        instruments: Sequence[Instrument],
        book_depth: int,
        stats: ExchangeStats,
    ) -> None:
        self.adapter = adapter
        self.feed: FeedState = adapter.new_feed(instruments, book_depth)
        self.stats = stats
        self.url: str | None = None
        self.by_type: dict[type, int] = {}
        # REST snapshot endpoint and the query key naming the symbol (Binance: depth?symbol=)
        self.snapshot_path: str | None = None
        self.snapshot_key: str | None = None
        self.ids = {i.exchange_symbol: i.symbol for i in instruments}
        if instruments:
            request = adapter.book_snapshot_request(instruments[0])
            if request is not None:
                self.snapshot_path = request.path
                keys = [k for k, v in request.params.items() if v == instruments[0].exchange_symbol]
                self.snapshot_key = keys[0] if keys else None

    def ws(self, record: CaptureRecord) -> FeedOutput:
        self.stats.messages += 1
        if record.url == self.url:
            return self.feed.on_message(record.raw, record.ts_ns)
        if self.url is None:
            self.url = record.url
            return self.feed.on_message(record.raw, record.ts_ns)
        self.url = record.url  # a new connection: the old one dropped first
        self.stats.reconnects += 1
        out = self.feed.on_disconnect(record.ts_ns)
        out.extend(self.feed.on_message(record.raw, record.ts_ns))
        return out

    def snapshot(self, record: CaptureRecord, query: str) -> FeedOutput:
        self.stats.snapshot_records += 1
        params = dict(parse_qsl(query))
        exchange_id = params.get(self.snapshot_key or "", "")
        symbol = self.ids.get(exchange_id, exchange_id)
        return self.feed.on_rest_snapshot(symbol, record.raw, record.ts_ns)

    def count(self, out: FeedOutput) -> None:
        by_type = self.by_type
        for event in out.events:
            kind = type(event)
            by_type[kind] = by_type.get(kind, 0) + 1
        if out.errors:
            errors = self.stats.errors_by_reason
            for error in out.errors:
                errors[error.reason] = errors.get(error.reason, 0) + 1
        if out.gaps:
            gaps = self.stats.gaps_by_reason
            for gap in out.gaps:
                gaps[gap.reason] = gaps.get(gap.reason, 0) + 1

    def finish(self) -> None:
        counters = self.feed.counters
        self.stats.sequence_gaps = counters.sequence_gaps
        self.stats.checksum_failures = counters.checksum_failures
        self.stats.crossed_books = counters.crossed_books
        self.stats.resyncs = counters.resyncs
        self.stats.events_by_type = dict(
            sorted((_tag(kind), n) for kind, n in self.by_type.items())
        )
        self.stats.errors_by_reason = dict(sorted(self.stats.errors_by_reason.items()))
        self.stats.gaps_by_reason = dict(sorted(self.stats.gaps_by_reason.items()))


class Replay:
    """Replays capture files; ``run`` returns the stats, ``books`` the final L2 books."""

    def __init__(
        self,
        *,
        book_depth: int = 10,
        instrument_source: InstrumentSource | None = None,
        event_sink: EventSink | None = None,
        on_warning: Callable[[str], None] | None = None,
        adapters: Mapping[str, ExchangeAdapter] | None = None,
    ) -> None:
        if book_depth < 1:
            raise UsageError("book depth must be at least 1")
        self.book_depth = book_depth
        self.instrument_source = instrument_source
        self.event_sink = event_sink
        self.on_warning = on_warning
        self.stats = ReplayStats()
        self._adapters: dict[str, ExchangeAdapter | None] = dict(adapters or {})
        self._replays: dict[str, _ExchangeReplay] = {}

    # --- public -----------------------------------------------------------------------

    def run(self, paths: Sequence[Path]) -> ReplayStats:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UsageError(f"capture file not found: {', '.join(missing)}")
        start = time.perf_counter()
        instruments, needed = self._scan(paths)
        for exchange in sorted(needed):
            self._open_exchange(exchange, instruments.get(exchange, {}))
        self.stats.files = len(paths)
        sink = self.event_sink
        for line in self._lines(paths, count=True):
            out = self._route(line)
            if out is None:
                continue
            if sink is not None and (out.events or out.gaps):
                sink([*out.events, *out.gaps])
        for replay in self._replays.values():
            replay.finish()
        self.stats.elapsed_s = time.perf_counter() - start
        return self.stats

    def books(self) -> Books:
        """Final books: {exchange: {symbol: {"bids": [(price, size)...], "asks": [...]}}}."""
        return {
            exchange: {
                symbol: {"bids": bids, "asks": asks}
                for symbol, (bids, asks) in sorted(replay.feed.books().items())
            }
            for exchange, replay in sorted(self._replays.items())
        }

    # --- reading ----------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        if len(self.stats.warnings) < MAX_WARNINGS:
            self.stats.warnings.append(message)
            if self.on_warning is not None:
                self.on_warning(message)
            else:
                log.warning("%s", message)

    def _lines(self, paths: Sequence[Path], *, count: bool) -> Iterator[_Line]:
        """Decoded records with their position; bad lines are counted (``count``) and skipped."""
        for path in paths:
            try:
                handle: IO[bytes] = open_capture(path)
            except OSError as exc:
                raise UsageError(f"cannot open capture {path}: {exc}") from None
            with handle:
                try:
                    yield from self._file_lines(path, handle, count)
                except (OSError, EOFError) as exc:  # cut or corrupt gzip/zstd stream
                    if count:
                        self.stats.truncated_lines += 1
                        self._warn(f"{path}: compressed stream ends early ({exc})")

    def _file_lines(self, path: Path, handle: IO[bytes], count: bool) -> Iterator[_Line]:
        decode = _record_decoder.decode
        for number, line in enumerate(handle, start=1):
            if count:
                self.stats.lines += 1
            try:
                yield _Line(path, number, decode(line))
            except msgspec.DecodeError as exc:
                if not count:
                    continue
                if not line.strip():
                    self.stats.lines -= 1  # blank lines are no records
                elif not line.endswith(b"\n"):
                    self.stats.truncated_lines += 1
                    self._warn(f"{path}:{number}: truncated last line skipped ({exc})")
                else:
                    self.stats.malformed_lines += 1
                    self._warn(f"{path}:{number}: malformed capture line skipped ({exc})")

    # --- first pass: instruments ------------------------------------------------------

    def _adapter(self, exchange: str) -> ExchangeAdapter | None:
        if exchange not in self._adapters:
            try:
                self._adapters[exchange] = get_adapter(exchange)
            except UsageError:
                self._adapters[exchange] = None
                self._warn(f"records of unknown exchange {exchange!r} skipped")
        return self._adapters[exchange]

    def _instrument_paths(self, exchange: str, adapter: ExchangeAdapter) -> tuple[str, ...]:
        return (adapter.instruments_request().path, *EXTRA_INSTRUMENT_PATHS.get(exchange, ()))

    def _scan(self, paths: Sequence[Path]) -> tuple[dict[str, dict[str, Instrument]], set[str]]:
        """Every instrument answer in the capture, and the exchanges that need a feed."""
        instruments: dict[str, dict[str, Instrument]] = {}
        needed: set[str] = set()
        routes: dict[str, tuple[tuple[str, ...], str | None]] = {}
        for path in paths:
            with open_capture(path) as handle:
                try:
                    for number, line in enumerate(handle, start=1):
                        try:
                            head = _head_decoder.decode(line)
                        except msgspec.DecodeError:
                            continue  # reported by the main pass
                        adapter = self._adapter(head.exchange)
                        if adapter is None:
                            continue
                        if head.kind == "ws":
                            needed.add(head.exchange)
                            continue
                        if head.exchange not in routes:
                            routes[head.exchange] = (
                                self._instrument_paths(head.exchange, adapter),
                                _snapshot_path(adapter),
                            )
                        instrument_paths, snapshot_path = routes[head.exchange]
                        url_path = urlsplit(head.url).path
                        if url_path in instrument_paths:
                            record = _record_decoder.decode(line)
                            found = self._parse_instruments(adapter, record, path, number)
                            known = instruments.setdefault(head.exchange, {})
                            known.update((i.symbol, i) for i in found)
                        elif url_path == snapshot_path:
                            needed.add(head.exchange)
                except (OSError, EOFError):
                    pass  # reported by the main pass
        return instruments, needed

    def _parse_instruments(
        self, adapter: ExchangeAdapter, record: CaptureRecord, path: Path, number: int
    ) -> list[Instrument]:
        try:
            return adapter.parse_instruments(record.raw)
        except (TickvaultError, ValueError, msgspec.MsgspecError) as exc:
            self._warn(f"{path}:{number}: instrument list not usable ({exc})")
            return []

    def _open_exchange(self, exchange: str, found: dict[str, Instrument]) -> None:
        adapter = self._adapters[exchange]
        assert adapter is not None
        stats = self.stats.exchanges.setdefault(exchange, ExchangeStats())
        instruments: Sequence[Instrument] = list(found.values())
        stats.instruments_from = "capture"
        if not instruments and self.instrument_source is not None:
            instruments = list(self.instrument_source(exchange))
            stats.instruments_from = "stored"
        if not instruments:
            raise UsageError(
                f"no {exchange} instruments: the capture has no instrument list "
                f"({adapter.instruments_request().path}) and none are stored; add a capture "
                "of it, or configure the database that holds them"
            )
        stats.instruments = len(instruments)
        self._replays[exchange] = _ExchangeReplay(adapter, instruments, self.book_depth, stats)

    # --- second pass: routing ---------------------------------------------------------

    def _route(self, line: _Line) -> FeedOutput | None:
        record = line.record
        replay = self._replays.get(record.exchange)
        if replay is None:
            if self._adapter(record.exchange) is None:
                self.stats.unknown_exchange_records += 1
            else:  # only instrument answers / other REST for this exchange: nothing to feed
                self.stats.exchanges.setdefault(record.exchange, ExchangeStats())
                self._count_rest(record)
            return None
        if record.kind == "ws":
            out = replay.ws(record)
        else:
            parts = urlsplit(record.url)
            if parts.path == replay.snapshot_path:
                out = replay.snapshot(record, parts.query)
            else:
                self._count_rest(record)
                return None
        replay.count(out)
        return out

    def _count_rest(self, record: CaptureRecord) -> None:
        stats = self.stats.exchanges[record.exchange]
        adapter = self._adapters[record.exchange]
        assert adapter is not None
        if urlsplit(record.url).path in self._instrument_paths(record.exchange, adapter):
            stats.instrument_records += 1
        else:
            stats.skipped_records += 1


class JsonlEventWriter:
    """An :data:`EventSink` writing tagged JSON lines (``{"type": "trade", ...}``)."""

    def __init__(self, handle: IO[bytes], flush_bytes: int = 1 << 20) -> None:
        self._handle = handle
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self._flush_bytes = flush_bytes
        self.written = 0

    def __call__(self, events: Sequence[MarketEvent | Gap]) -> None:
        self._buffer += self._encoder.encode_lines(events)
        self.written += len(events)
        if len(self._buffer) >= self._flush_bytes:
            self.flush()

    def flush(self) -> None:
        self._handle.write(self._buffer)
        self._buffer.clear()


def replay_files(
    paths: Sequence[Path],
    *,
    book_depth: int = 10,
    instrument_source: InstrumentSource | None = None,
    event_sink: EventSink | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[ReplayStats, Books]:
    """Replay ``paths`` in order; returns the stats and the final books."""
    replay = Replay(
        book_depth=book_depth,
        instrument_source=instrument_source,
        event_sink=event_sink,
        on_warning=on_warning,
    )
    stats = replay.run(paths)
    return stats, replay.books()
