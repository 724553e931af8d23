from collections.abc import Iterable

from tickvault.model import MarketEvent
from tickvault.pipeline.records import Rejected
from tickvault.pipeline.validate import Validator

def validate(
    validator: Validator, events: Iterable[object], now_ns: int
) -> tuple[list[MarketEvent], list[Rejected], dict[str, int]]: ...
