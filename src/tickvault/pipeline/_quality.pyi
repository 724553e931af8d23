from tickvault.model import MarketEvent
from tickvault.pipeline.quality import QualityTracker

def observe_accepted(
    tracker: QualityTracker, accepted: list[MarketEvent], now_ns: int
) -> dict[tuple[str, str], MarketEvent]: ...
