"""Kraken v2 trade ids count up by one per pair: a jump is a recorded gap."""

from __future__ import annotations

from tickvault.exchanges.kraken.adapter import ADAPTER
from tickvault.model import Instrument, Trade

from .conftest import records


def test_v2_trade_id_jump_is_a_sequence_gap(instruments: list[Instrument]) -> None:
    feed = ADAPTER.new_feed(instruments, 10)
    snapshot = next(r for r in records("ws_v2_docs.jsonl") if '"trade_id":4665846' in r.raw)
    out = feed.on_message(snapshot.raw, snapshot.ts_ns)
    trades = [e for e in out.events if isinstance(e, Trade)]
    assert [t.trade_id for t in trades][:2] == ["4665846", "4665847"]
    assert out.gaps == []
    last = trades[-1]
    # The same message again as an update whose ids jump by 10: trades were missed.
    later = snapshot.raw.replace('"snapshot"', '"update"')
    for old in {t.trade_id for t in trades}:
        later = later.replace(f'"trade_id":{old}', f'"trade_id":{int(old) + 10}')
    out = feed.on_message(later, snapshot.ts_ns + 1)
    gaps = [g for g in out.gaps if g.reason == "sequence_gap"]
    assert len(gaps) == 1 and feed.counters.sequence_gaps == 1
    assert (gaps[0].symbol, gaps[0].channel) == ("MATIC-USD", "trade")
    assert gaps[0].from_ns == last.ts_ns
    # After a disconnect the disconnect gap covers what was missed: no second gap.
    feed.on_disconnect(snapshot.ts_ns + 2)
    out = feed.on_message(snapshot.raw.replace('"snapshot"', '"update"'), snapshot.ts_ns + 3)
    assert [g for g in out.gaps if g.reason == "sequence_gap"] == []
