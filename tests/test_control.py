"""The control channel to running subtasks, over the real Redis (analysis/control.py)."""

from __future__ import annotations

import threading
import time

import pytest

from analysis import control
from analysis.control import ACKNOWLEDGED, APPLIED, REFUSED, TIMEOUT, Inbox, send_to_subtask, send_to_subtasks
from tests.nodes import wait_for


def answer_in_thread(inbox: Inbox, ok: bool = True, reason: str = "", delay: float = 0.0, count: int = 1):
    """Play the running job: poll the inbox and acknowledge `count` commands."""
    received: list[control.Command] = []

    def run() -> None:
        deadline = time.monotonic() + 5
        while len(received) < count and time.monotonic() < deadline:
            for command in inbox.poll():
                time.sleep(delay)
                received.append(command)
                inbox.ack(command, ok=ok, reason=reason)
            time.sleep(0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, received


def test_a_subtask_with_no_running_job_is_answered_at_once_as_applied():
    started = time.monotonic()
    ack = send_to_subtask(990001, {"op": "update"}, timeout=30)
    assert ack.status == APPLIED and ack.ok
    assert time.monotonic() - started < 15  # did not wait for the 30 s deadline


def test_a_running_job_receives_the_command_and_its_ack_comes_back():
    with Inbox(990002) as inbox:
        thread, received = answer_in_thread(inbox)
        ack = send_to_subtask(990002, {"op": "update", "fields": ["rois"]}, timeout=5)
        thread.join()
    assert ack.status == ACKNOWLEDGED and ack.ok
    assert received[0].op == "update" and received[0].body == {"fields": ["rois"]}
    assert ack.command_id == received[0].id


def test_a_refusal_carries_the_devices_reason():
    with Inbox(990003) as inbox:
        thread, _ = answer_in_thread(inbox, ok=False, reason="bad polygon")
        ack = send_to_subtask(990003, {"op": "update"}, timeout=5)
        thread.join()
    assert (ack.status, ack.reason, ack.ok) == (REFUSED, "bad polygon", False)


def test_a_job_that_never_answers_times_out_within_the_deadline():
    with Inbox(990004):
        started = time.monotonic()
        ack = send_to_subtask(990004, {"op": "update"}, timeout=0.5)
        elapsed = time.monotonic() - started
    assert ack.status == TIMEOUT and not ack.ok
    assert 0.4 < elapsed < 10  # waited for the deadline, and not forever


def test_several_subtasks_share_one_deadline_and_answers_keep_the_order_asked():
    with Inbox(990005) as fast, Inbox(990006) as slow, Inbox(990007):
        t1, _ = answer_in_thread(fast)
        t2, _ = answer_in_thread(slow, delay=0.3)
        started = time.monotonic()
        acks = send_to_subtasks([990007, 990006, 990005, 990008], {"op": "stop"}, timeout=1.0)
        elapsed = time.monotonic() - started
        t1.join(), t2.join()
    assert [a.subtask_id for a in acks] == [990007, 990006, 990005, 990008]
    assert [a.status for a in acks] == [TIMEOUT, ACKNOWLEDGED, ACKNOWLEDGED, APPLIED]
    assert elapsed < 10  # a hang guard


def test_closing_the_inbox_refuses_what_is_still_queued_and_ends_liveness():
    inbox = Inbox(990009).__enter__()
    results: list = []
    sender = threading.Thread(
        target=lambda: results.append(send_to_subtask(990009, {"op": "update"}, timeout=5))
    )
    sender.start()
    time.sleep(0.2)
    inbox.close()
    sender.join()
    assert results[0].status == REFUSED
    assert send_to_subtask(990009, {"op": "update"}, timeout=1).status == APPLIED


def test_commands_left_from_an_earlier_run_are_not_applied_by_the_next():
    control.client().rpush(control._key("cmd", 990010), '{"id": "old", "op": "stop"}')
    with Inbox(990010) as inbox:
        assert inbox.poll() == []


def test_between_frames_a_job_reads_its_commands_when_a_sender_wakes_it(monkeypatch):
    monkeypatch.setattr(control, "POLL_FALLBACK", 3600.0)  # only a wake-up makes it read the list
    with Inbox(990011) as inbox:
        assert inbox.pending() == []  # the first look reads the list (nothing waiting)
        quiet = '{"id": "quiet", "op": "update"}'
        control.client().rpush(control._key("cmd", 990011), quiet)  # pushed without a wake-up
        assert inbox.pending() == []  # not read: no round trip to Redis between wake-ups
        control.notify_subtasks([990011], {"op": "stop"})
        commands = wait_for(inbox.pending, 10, interval=0.01, what="the woken job's commands")
        assert [c.op for c in commands] == ["update", "stop"]
        assert inbox.pending() == []  # the wake-up was drained with the list


def test_without_a_wake_up_a_job_still_reads_its_commands_after_the_fallback(monkeypatch):
    monkeypatch.setattr(control, "POLL_FALLBACK", 0.0)  # a lost wake-up: the next look reads the list
    with Inbox(990012) as inbox:
        control.client().rpush(control._key("cmd", 990012), '{"id": "lost", "op": "update"}')
        assert [c.id for c in inbox.pending()] == ["lost"]


def test_a_broken_wake_subscription_counts_as_a_wake_up_and_is_made_again(monkeypatch):
    monkeypatch.setattr(control, "POLL_FALLBACK", 3600.0)
    with Inbox(990013) as inbox:
        inbox.pending()
        control.client().rpush(control._key("cmd", 990013), '{"id": "c", "op": "update"}')
        control.client().client_kill_filter(_type="pubsub")  # its connection cut, as by a Redis restart
        assert [c.id for c in inbox.pending()] == ["c"]  # read at once, not lost
        control.notify_subtasks([990013], {"op": "stop"})
        commands = wait_for(inbox.pending, 10, interval=0.01, what="the re-subscribed job's commands")
        assert [c.op for c in commands] == ["stop"]


@pytest.mark.parametrize("ok", [True, False])
def test_ack_as_dict_says_whether_it_worked(ok):
    ack = control.Ack(1, ACKNOWLEDGED if ok else REFUSED, "", "c1")
    assert ack.as_dict() == {
        "subtask_id": 1,
        "status": ack.status,
        "reason": "",
        "command_id": "c1",
        "ok": ok,
    }
