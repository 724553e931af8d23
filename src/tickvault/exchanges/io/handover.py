"""The hand-over of a planned WebSocket rollover: when the old socket may close, and dedup.

During a rollover both sockets deliver the same streams for a while. The old one cannot close as
soon as the new one delivers: the server may still hold messages for the old socket that it
sent before the new one subscribed (a server drops a socket's unsent messages when it closes),
and those are on no other socket. Messages of one socket arrive in the order the server queued them, so once one message has come
on both sockets (in either order), everything queued for the old socket before it has arrived,
and everything after it is on the new socket too: the sockets have *caught up* and the old one
may close.

Meanwhile each message delivered by both sockets is emitted once: both feeds still process
every message of their own socket (their books and sequence checks stay whole), only the events
of the second copy are not passed on. Messages are matched by their exact text, which is what
both sockets carry for the same event.
"""

from __future__ import annotations

from collections.abc import Callable

OLD, NEW = 0, 1


class Handover:
    """Dedup and catch-up state shared by the two sockets of one rollover."""

    def __init__(self, on_caught_up: Callable[[], object] = lambda: None) -> None:
        self._first: dict[str | bytes, int] = {}  # message text -> socket that delivered it
        self._pending_old = 0  # delivered by the old socket only, so far
        self.caught_up = False  # one message came on both sockets
        self._on_caught_up = on_caught_up  # called once, when that first happens
        self.closed_at_s: float | None = None  # monotonic time the old socket was closed

    def first_copy(self, side: int, raw: str | bytes) -> bool:
        """True when this socket's copy of ``raw`` is the first one (emit its events)."""
        held = self._first.get(raw)
        if held is None:
            self._first[raw] = side
            self._pending_old += side == OLD
            return True
        if held == side:  # the server sent it twice on one socket: not ours to hide
            return True
        del self._first[raw]
        if not self.caught_up:
            self.caught_up = True
            self._on_caught_up()
        if side == NEW:
            self._pending_old -= 1
        return False

    def done(self, now_s: float, window_s: float) -> bool:
        """Nothing left to dedup: the old socket is closed and the new one has delivered every
        message the old one delivered first — or ``window_s`` has passed since the close (what
        the old socket alone carried, from before the new one subscribed, never comes again)."""
        if self.closed_at_s is None:
            return False
        return self._pending_old <= 0 or now_s - self.closed_at_s >= window_s
