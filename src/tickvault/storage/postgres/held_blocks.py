"""Decoded candle blocks a reader already holds, each tied to the row version it came from.

A ``candle_blocks`` row changes version (``xmin``, and ``built_at`` on every store) whenever a
writer marks it or a reader stores a new frame. A table decoded from one row version is that
version's frame, so while the server still has that version the frame need not travel and be
decoded again: reads send the versions they hold, the server leaves those frames out, and the
reader uses the tables it has. Anything else (a new version, a marked block) comes as before.

A held table is either *complete* — every bar of the block at that row version: a frame of a
clean row, or a block assembled in a read's snapshot from a marked row's frame and the bars
from its ``dirty_from`` on — or only that version's *frame* (decoded from a marked row: valid
below ``dirty_from``). A marked row keeps its frame and ``built_at`` until the next store, so a
held table of the same ``built_at`` is a valid prefix below the row's current ``dirty_from``
even after further marks changed its version (``candle_blocks.py`` uses that).

Bounded in bytes (Arrow buffer sizes); the least recently used block is dropped first.
"""

from __future__ import annotations

import pyarrow as pa

from tickvault.storage.lru import Lru

DEFAULT_MAX_BYTES = 64 << 20

Key = tuple[str, str, str]  # exchange, symbol, timeframe
Held = tuple[str, pa.Table, bool]  # (row version, block table, complete)


class HeldBlocks:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._by_key: dict[Key, dict[int, Held]] = {}  # the blocks of a stream, for ranges
        self._lru: Lru[tuple[Key, int], Held] = Lru(max_bytes=max_bytes, on_drop=self._unindex)

    @property
    def max_bytes(self) -> int:
        return self._lru.max_bytes or 0

    @property
    def bytes(self) -> int:
        return self._lru.bytes

    def in_range(self, key: Key, first: int, last: int) -> dict[int, Held]:
        """Held blocks of ``key`` starting in [first, last] (a copy: later puts may evict)."""
        blocks = self._by_key.get(key)
        if not blocks:
            return {}
        return {start: held for start, held in blocks.items() if first <= start <= last}

    def put(self, key: Key, start: int, version: str, table: pa.Table, complete: bool) -> None:
        held = (version, table, complete)
        # (``Table.nbytes`` walks every value: 0.3 ms)
        if self._lru.put((key, start), held, table.get_total_buffer_size()):
            self._by_key.setdefault(key, {})[start] = held

    def touch(self, key: Key, start: int) -> None:
        self._lru.touch((key, start))

    def __len__(self) -> int:
        return len(self._lru)

    def _unindex(self, dropped: tuple[Key, int]) -> None:
        key, start = dropped
        blocks = self._by_key.get(key)
        if blocks is not None:
            blocks.pop(start, None)
            if not blocks:
                del self._by_key[key]
