"""The readers' bounded LRU map (storage/lru.py)."""

from __future__ import annotations

from tickvault.storage.lru import Lru


def test_bounds_in_entries_and_bytes_drop_the_least_recently_used() -> None:
    dropped: list[str] = []
    lru: Lru[str, int] = Lru(max_items=3, max_bytes=100, on_drop=dropped.append)
    for key, size in (("a", 10), ("b", 10), ("c", 10)):
        assert lru.put(key, size, size)
    assert lru.get("a") == 10  # a is now the most recent
    lru.put("d", 10, 10)  # 4 entries: b, the least recently used, goes
    assert dropped == ["b"] and lru.get("b") is None and len(lru) == 3
    assert lru.get("c", touch=False) == 10
    lru.put("e", 85, 85)  # c goes (4 entries), then a (still 105 bytes); d and e stay
    assert dropped == ["b", "c", "a"] and lru.bytes == 95 and len(lru) == 2


def test_an_entry_over_the_whole_budget_is_not_kept_and_replacing_one_counts_once() -> None:
    dropped: list[str] = []
    lru: Lru[str, str] = Lru(max_bytes=50, on_drop=dropped.append)
    assert lru.put("a", "x", 20)
    assert not lru.put("big", "y", 51) and lru.get("big") is None
    assert lru.put("a", "z", 30)  # replaced: the old size is given back
    assert lru.bytes == 30 and lru.get("a") == "z" and dropped == ["a"]
