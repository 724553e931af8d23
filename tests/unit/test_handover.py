"""The rollover hand-over: when the old socket may close, and each message emitted once."""

from __future__ import annotations

from tickvault.exchanges.io.handover import NEW, OLD, Handover


def test_old_backlog_is_emitted_then_copies_once() -> None:
    h = Handover()
    # the old socket still drains what the server queued before the new one subscribed
    assert h.first_copy(OLD, "m1") and h.first_copy(OLD, "m2")
    assert h.first_copy(NEW, "m3") and not h.caught_up  # the new one starts later
    assert not h.first_copy(OLD, "m3")  # the old one reaches it: caught up, copy hidden
    assert h.caught_up


def test_new_socket_behind_hides_its_copies_until_done() -> None:
    h = Handover()
    assert h.first_copy(OLD, "a") and h.first_copy(OLD, "b")
    assert not h.first_copy(NEW, "a") and h.caught_up  # the old one was ahead
    assert not h.done(0.0, 5.0)  # the old socket is still open
    h.closed_at_s = 10.0
    assert not h.done(10.1, 5.0)  # "b" is still to come on the new socket
    assert not h.first_copy(NEW, "b")
    assert h.done(10.2, 5.0)


def test_a_message_repeated_on_one_socket_is_not_hidden() -> None:
    h = Handover()
    assert h.first_copy(NEW, "x") and h.first_copy(NEW, "x")  # the server's own duplicate
    assert not h.caught_up


def test_done_after_the_window_when_old_only_messages_never_come_again() -> None:
    h = Handover()
    assert h.first_copy(OLD, b"only-old")
    h.closed_at_s = 1.0
    assert not h.done(2.0, 5.0) and h.done(6.0, 5.0)


def test_caught_up_is_announced_once() -> None:
    calls: list[int] = []
    h = Handover(lambda: calls.append(1))
    assert h.first_copy(OLD, "a") and h.first_copy(OLD, "b")
    assert not h.first_copy(NEW, "a") and not h.first_copy(NEW, "b")
    assert calls == [1]
