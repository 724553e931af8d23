from tickvault.exchanges.base import FeedOutput
from tickvault.exchanges.binance.feed import BinanceFeed

def fast_message(feed: BinanceFeed, raw: bytes | str, recv_ns: int) -> FeedOutput | None: ...
