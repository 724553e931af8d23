"""One bounded least-recently-used map for the readers' in-process caches (held candle blocks,
held Redis frames, repeat results, polars frames): bounded in entries and in bytes (each
entry's size given when put), oldest dropped first, thread-safe."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(
        self,
        max_items: int | None = None,
        max_bytes: int | None = None,
        on_drop: Callable[[K], None] | None = None,
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.bytes = 0
        self._on_drop = on_drop  # told of every key dropped (evicted, replaced or popped)
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, *, touch: bool = True) -> V | None:
        """The value, marked most recently used unless ``touch`` is false."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if touch:
                self._entries.move_to_end(key)
            return entry[0]

    def touch(self, key: K) -> None:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)

    def put(self, key: K, value: V, size: int = 0) -> bool:
        """Keep ``value``, dropping the oldest entries past the bounds; False (and nothing
        kept) when it alone is larger than ``max_bytes``."""
        with self._lock:
            self._drop(key)
            if self.max_bytes is not None and size > self.max_bytes:
                return False
            self._entries[key] = (value, size)
            self.bytes += size
            while (self.max_items is not None and len(self._entries) > self.max_items) or (
                self.max_bytes is not None and self.bytes > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))
            return True

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.bytes -= entry[1]
        if self._on_drop is not None:
            self._on_drop(key)
