"""Decoded candle blocks a reader already holds, each tied to the row version it came from.

A ``candle_blocks`` row changes version (``xmin``, and ``built_at`` on every store) whenever a
writer marks it or a reader stores a new frame. A table decoded from one row version is that
version's frame, so while the server still has that version the frame need not travel and be
decoded again: reads send the versions they hold, the server leaves those frames out, and the
reader uses the tables it has. Anything else (a new version, a marked block) comes as before.

Bounded in bytes (Arrow buffer sizes); the least recently used block is dropped first.
"""

from __future__ import annotations

from collections import OrderedDict

import pyarrow as pa

DEFAULT_MAX_BYTES = 64 << 20

Key = tuple[str, str, str]  # exchange, symbol, timeframe
Held = tuple[str, pa.Table]  # (row version, decoded block table)


class HeldBlocks:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._by_key: dict[Key, dict[int, Held]] = {}
        self._order: OrderedDict[tuple[Key, int], int] = OrderedDict()  # → bytes, oldest first

    def in_range(self, key: Key, first: int, last: int) -> dict[int, Held]:
        """Held blocks of ``key`` starting in [first, last] (a copy: later puts may evict)."""
        blocks = self._by_key.get(key)
        if not blocks:
            return {}
        return {start: held for start, held in blocks.items() if first <= start <= last}

    def put(self, key: Key, start: int, version: str, table: pa.Table) -> None:
        size = table.get_total_buffer_size()  # (``nbytes`` walks every value: 0.3 ms)
        if size > self.max_bytes:
            return
        self._drop(key, start)
        self._by_key.setdefault(key, {})[start] = (version, table)
        self._order[key, start] = size
        self.bytes += size
        while self.bytes > self.max_bytes:
            (old_key, old_start), _ = next(iter(self._order.items()))
            self._drop(old_key, old_start)

    def touch(self, key: Key, start: int) -> None:
        if (key, start) in self._order:
            self._order.move_to_end((key, start))

    def __len__(self) -> int:
        return len(self._order)

    def _drop(self, key: Key, start: int) -> None:
        size = self._order.pop((key, start), None)
        if size is None:
            return
        self.bytes -= size
        blocks = self._by_key[key]
        del blocks[start]
        if not blocks:
            del self._by_key[key]
