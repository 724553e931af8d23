from collections.abc import Callable, Sequence

from tickvault.model import Trade

def trade_lines(
    batch: Sequence[Trade], seconds: dict[int, str], second: Callable[[int], str]
) -> str | None: ...
