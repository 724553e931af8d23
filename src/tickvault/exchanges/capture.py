"""Raw capture: every raw message with its receive time, in append-only JSON-lines files.

Format (one JSON object per line)::

    {"ts_ns": <receive time, ns>, "exchange": "binance"|"coinbase"|"kraken",
     "kind": "ws"|"rest", "url": <connection or request URL>, "raw": <message text>}

Files are plain ``.jsonl`` or compressed ``.jsonl.gz`` / ``.jsonl.zst`` (zstd when the optional
``zstandard`` module is installed); the reader takes all of them. The writer rotates to a new
file by size or age, so a crash loses at most the unflushed tail of the newest file.
Test fixtures use the same format.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal, cast

import msgspec

CaptureKind = Literal["ws", "rest"]


class CaptureRecord(msgspec.Struct, frozen=True):
    ts_ns: int
    exchange: str
    kind: CaptureKind
    url: str
    raw: str


_decoder = msgspec.json.Decoder(CaptureRecord)
_encoder = msgspec.json.Encoder()


class CaptureFormatError(ValueError):
    """A capture line that is not a valid record; names the file and line."""


def _open_text(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    if path.suffix == ".zst":
        import zstandard  # type: ignore[import-not-found,unused-ignore]

        return cast(BinaryIO, zstandard.open(path, "rb"))
    return open(path, "rb")


def read_capture(path: Path, *, strict: bool = True) -> Iterator[CaptureRecord]:
    """Records of one capture file in file order.

    A malformed line raises :class:`CaptureFormatError` (``strict``) or is skipped; a
    truncated last line (a crash mid-write) is always skipped.
    """
    with _open_text(path) as handle:
        lines = handle.read().split(b"\n")
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield _decoder.decode(line)
        except msgspec.DecodeError as exc:
            if number - 1 == last and not line.endswith(b"}"):
                return  # truncated tail
            if strict:
                raise CaptureFormatError(f"{path}:{number}: {exc}") from None


def read_captures(paths: Iterable[Path], *, strict: bool = True) -> Iterator[CaptureRecord]:
    for path in paths:
        yield from read_capture(path, strict=strict)


class CaptureWriter:
    """Appends records to rotating files ``<prefix>-<start ns>.jsonl[.gz]`` in ``folder``."""

    def __init__(
        self,
        folder: Path,
        prefix: str = "capture",
        *,
        compress: bool = True,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float = 3600.0,
    ) -> None:
        self.folder = folder
        self.prefix = prefix
        self.compress = compress
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._handle: BinaryIO | None = None
        self._opened_at = 0.0
        self._written = 0
        self.paths: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def _rotate(self) -> BinaryIO:
        self.close()
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        path = self.folder / f"{self.prefix}-{time.time_ns()}{suffix}"
        handle = cast(BinaryIO, gzip.open(path, "ab") if self.compress else open(path, "ab"))  # noqa: SIM115
        self._handle = handle
        self._opened_at = time.monotonic()
        self._written = 0
        self.paths.append(path)
        return handle

    def write(self, record: CaptureRecord) -> None:
        handle = self._handle
        expired = time.monotonic() - self._opened_at > self.max_age_s
        if handle is None or self._written >= self.max_bytes or expired:
            handle = self._rotate()
        line = _encoder.encode(record) + b"\n"
        handle.write(line)
        self._written += len(line)

    def flush(self) -> None:
        """Make everything written so far readable by another process (a sync-flushed gzip
        member boundary for compressed files)."""
        if isinstance(self._handle, gzip.GzipFile):
            self._handle.flush(zlib.Z_SYNC_FLUSH)
        elif self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_capture(path: Path, records: Iterable[CaptureRecord]) -> None:
    """Write records to one plain or ``.gz`` file (fixtures, exports)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        for record in records:
            handle.write(_encoder.encode(record) + b"\n")
