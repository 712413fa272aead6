"""The park handshake of ``Sequence``, driven one step at a time.

One writer and two waiters run the real ``publish`` / ``park`` / ``wake`` code in threads
that stop at fixed points (the writer after it saw the parked flag, a waiter before its
cursor re-check, after its fence and while asleep); the test decides who moves next.
``futex.wait`` / ``futex.wake`` are replaced by a model that sleeps an actor while the word
holds the expected value, until a wake on that address. The property: once the writer has
published what a waiter waits for, that waiter is not left asleep.
"""

from __future__ import annotations

import ctypes
import mmap
import random
import threading

import pytest

from ringbuffer import fence, futex
from ringbuffer.barrier import SequenceBarrier
from ringbuffer.errors import AlertedError
from ringbuffer.sequence import Sequence

CURSOR_AT = 128
STEP_TIMEOUT = 10  # seconds an actor may take to reach its next stop (it takes µs)

pytestmark = pytest.mark.timeout(300)


class Abort(BaseException):
    """Ends an actor's thread once the test is over."""


class Scheduler:
    """Runs each actor (a thread) only when told to, up to its next ``stop``."""

    def __init__(self) -> None:
        self.over = False
        self._cv = threading.Condition()
        self._turn: str | None = None
        self.at: dict[str, str] = {}
        self.errors: dict[str, BaseException] = {}
        self.threads: list[threading.Thread] = []

    def spawn(self, name: str, body) -> None:
        def run() -> None:
            with self._cv:
                self._cv.wait_for(lambda: self._turn == name, STEP_TIMEOUT)
            try:
                body()
            except Abort:
                pass
            except BaseException as error:
                self.errors[name] = error
            finally:
                with self._cv:
                    self.at[name] = "done"
                    self._turn = None
                    self._cv.notify_all()

        self.at[name] = "start"
        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def stop(self, point: str) -> None:
        """Called by an actor: hand control back to the test and wait for the next turn."""
        name = threading.current_thread().name
        with self._cv:
            self.at[name] = point
            self._turn = None
            self._cv.notify_all()
            if not self._cv.wait_for(lambda: self._turn == name or self.over, STEP_TIMEOUT):
                raise TimeoutError(f"{name} was never resumed")
            if self.over:
                raise Abort

    def step(self, name: str) -> str:
        """Let ``name`` run to its next stop; return where it stopped."""
        with self._cv:
            assert self.at[name] != "done", f"{name} has finished"
            self._turn = name
            self._cv.notify_all()
            assert self._cv.wait_for(lambda: self._turn is None, STEP_TIMEOUT), f"{name} hung"
        assert name not in self.errors, self.errors
        return self.at[name]

    def run_until(self, name: str, point: str) -> None:
        while self.step(name) != point:
            assert self.at[name] != "done", f"{name} finished before reaching {point}"

    def finish(self) -> None:
        """End whatever is still paused (the test is over) and join the threads."""
        with self._cv:
            self.over = True
            self._cv.notify_all()
        for thread in self.threads:
            thread.join(STEP_TIMEOUT)


class ModelFutex:
    """``futex.wait`` / ``futex.wake`` on a word of this process, asleep = stopped."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.asleep: dict[str, int] = {}  # actor -> the address it sleeps on

    def wait(self, address: int, expected: int, timeout_ns: int) -> bool:
        if ctypes.c_uint32.from_address(address).value != expected & 0xFFFFFFFF:
            return True  # EAGAIN: the word moved before the sleep
        name = threading.current_thread().name
        self.asleep[name] = address
        while name in self.asleep:
            self.scheduler.stop("asleep")
        return True

    def wake(self, address: int, count: int = futex.WAKE_ALL) -> None:
        for name, sleeping_on in list(self.asleep.items()):
            if sleeping_on == address:
                del self.asleep[name]


class SteppedSequence(Sequence):
    """The writer's sequence: stops between seeing the parked flag and waking."""

    __slots__ = ()
    scheduler: Scheduler

    def wake(self) -> None:
        SteppedSequence.scheduler.stop("saw flag")
        super().wake()


@pytest.fixture
def world(monkeypatch):
    """A cursor in an anonymous mapping, a scheduler, the futex model patched in."""
    buf = mmap.mmap(-1, 4096)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    scheduler = Scheduler()
    model = ModelFutex(scheduler)
    monkeypatch.setattr(futex, "wait", model.wait)
    monkeypatch.setattr(futex, "wake", model.wake)
    monkeypatch.setattr(fence, "waiter_fence", lambda: scheduler.stop("fenced"), raising=False)
    monkeypatch.setattr(SteppedSequence, "scheduler", scheduler, raising=False)
    sequences = []

    def sequence(kind=Sequence):
        made = kind(buf, CURSOR_AT, base + CURSOR_AT)
        sequences.append(made)
        return made

    writer = sequence(SteppedSequence)
    writer.view[0] = -1
    yield scheduler, model, writer, sequence
    scheduler.finish()
    for made in sequences:
        made.release()
    buf.close()


def spawn_waiter(scheduler: Scheduler, sequence: Sequence, want: int) -> None:
    """A waiter like a consumer's wait loop: park until the cursor reaches ``want``."""
    get = sequence.get

    def recheck() -> int:  # the cursor re-check inside ``park``
        scheduler.stop("recheck")
        return get()

    sequence.get = recheck

    def body() -> None:
        while True:
            seen = int(sequence.view[0])
            if seen >= want:
                return
            sequence.park(seen, 10**12)

    scheduler.spawn(f"waiter{want}", body)


def spawn_writer(scheduler: Scheduler, writer: Sequence, values: list[int]) -> None:
    def body() -> None:
        for value in values:
            writer.publish(value)
            scheduler.stop("published")

    scheduler.spawn("writer", body)


def assert_nobody_sleeps_through(scheduler, model, writer, wants) -> None:
    """Run every actor that can run until all are done or asleep; none may be asleep on a
    sequence already published."""
    while True:
        runnable = [n for n, at in scheduler.at.items() if at != "done" and n not in model.asleep]
        if not runnable:
            break
        scheduler.step(runnable[0])
    published = int(writer.view[0])
    left = [name for name in model.asleep if wants[name] <= published]
    assert not left, f"{left} asleep although {published} is published"


def test_a_waiter_raising_its_flag_while_the_writer_wakes_another_is_not_lost(world):
    """The interleaving of issue 9: writer sees A's flag; B raises its flag and re-checks;
    the writer clears the flag and wakes; B sleeps; the next publish must still wake B."""
    scheduler, model, writer, sequence = world
    spawn_waiter(scheduler, sequence(), want=0)  # A
    spawn_waiter(scheduler, sequence(), want=1)  # B
    spawn_writer(scheduler, writer, [0, 1])
    scheduler.run_until("waiter0", "asleep")  # A parks on -1
    scheduler.run_until("writer", "saw flag")  # publish(0) stored, A's flag seen
    scheduler.run_until("waiter1", "recheck")  # B saw 0, raised its flag, about to re-check
    scheduler.run_until("writer", "published")  # clears the flag, wakes A
    # B re-checks (still 0) and goes to sleep -- or, fixed, finds the wake-up already came
    while scheduler.step("waiter1") not in ("asleep", "done", "recheck"):
        pass
    scheduler.step("writer")  # publish(1)
    assert_nobody_sleeps_through(scheduler, model, writer, {"waiter0": 0, "waiter1": 1})


@pytest.mark.parametrize("seed", range(300))
def test_no_interleaving_leaves_a_waiter_asleep(world, seed):
    """Random but reproducible schedules (one per seed) of a writer publishing 0..2 and two
    waiters re-parking until they see 1 and 2."""
    scheduler, model, writer, sequence = world
    wants = {"waiter1": 1, "waiter2": 2}
    spawn_waiter(scheduler, sequence(), want=1)
    spawn_waiter(scheduler, sequence(), want=2)
    spawn_writer(scheduler, writer, [0, 1, 2])
    rng = random.Random(seed)
    while True:
        runnable = sorted(
            n for n, at in scheduler.at.items() if at != "done" and n not in model.asleep
        )
        if not runnable:
            break
        scheduler.step(rng.choice(runnable))
    assert scheduler.at["writer"] == "done"
    assert_nobody_sleeps_through(scheduler, model, writer, wants)


STATE_AT = 0  # the producer state word, elsewhere in the same mapping
FINISHED = 2


@pytest.mark.parametrize("seed", range(200))
def test_the_end_of_the_stream_reaches_a_waiter_that_was_going_to_sleep(world, seed):
    """``Producer.finish``: store the finished state, then ``wake`` unconditionally (the
    cursor does not move). A waiter like ``Consumer.wait`` checks the state (housekeeping)
    and then parks; if the state and the bump land between its check and its read of the
    counter, only the state re-check inside ``park`` keeps it from sleeping on."""
    scheduler, model, writer, sequence = world
    waiter = sequence()
    state = memoryview(waiter.view.obj)[STATE_AT : STATE_AT + 8].cast("q")
    state[0] = 0

    def finished() -> bool:
        return state[0] == FINISHED

    def wait_for_more() -> None:
        while not finished():  # housekeeping: EndOfStreamError once finished
            scheduler.stop("checked")  # the gap between housekeeping and the park
            waiter.park(int(waiter.view[0]), 10**12, finished)

    def finish() -> None:
        state[0] = FINISHED
        Sequence.wake(writer)  # unconditional, as in finish (no stop at "saw flag")

    scheduler.spawn("waiter", wait_for_more)
    scheduler.spawn("writer", finish)
    rng = random.Random(seed)
    try:
        while True:
            runnable = sorted(
                n for n, at in scheduler.at.items() if at != "done" and n not in model.asleep
            )
            if not runnable:
                break
            scheduler.step(rng.choice(runnable))
        assert not model.asleep, "the waiter sleeps although the stream has ended"
        assert scheduler.at["waiter"] == "done"
    finally:
        state.release()


ALERT_AT = 64  # the ring's alert word, elsewhere in the same mapping


@pytest.mark.parametrize("producer_cursor", [True, False], ids=["consumer", "producer"])
@pytest.mark.parametrize("seed", [None, *range(100)])
def test_an_alert_reaches_a_waiter_that_was_going_to_sleep(world, seed, producer_cursor):
    """``Ring.alert``: set the alert flag, then wake whoever sleeps (``nudge``, which may not
    bump the counter). A waiter like ``Consumer.wait`` / ``Producer.claim`` checks the flag
    (housekeeping) and then parks through its ``SequenceBarrier``; if the flag and the nudge
    land between that check and the sleep, only the alert re-check inside ``park`` keeps it
    from sleeping on. (The model runs that re-check and the futex call as one step; in the
    real code an alert landing between them is seen after one park timeout.)"""
    scheduler, model, writer, sequence = world
    waiter = sequence()
    alert = memoryview(waiter.view.obj)[ALERT_AT : ALERT_AT + 4].cast("I")
    alert[0] = 0
    state = Sequence(waiter.view.obj, STATE_AT, waiter.address - CURSOR_AT + STATE_AT)
    state.view[0] = 0
    barrier = SequenceBarrier("ring", [waiter], alert, state if producer_cursor else None)

    def wait_for_more() -> None:
        try:
            while True:
                barrier.check_alert()  # housekeeping
                scheduler.stop("checked")  # the gap between housekeeping and the park
                barrier.park(int(waiter.view[0]) + 1, 10**12)
        except AlertedError:
            pass

    def alert_the_ring() -> None:
        alert[0] = 1
        scheduler.stop("flag set")
        writer.nudge()

    scheduler.spawn("waiter", wait_for_more)
    scheduler.spawn("alerter", alert_the_ring)
    rng = random.Random(seed)
    try:
        if seed is None:  # the interleaving itself: flag and nudge between check and park
            scheduler.run_until("waiter", "checked")
            scheduler.run_until("alerter", "flag set")
            assert scheduler.step("alerter") == "done"  # the nudge finds nobody asleep
        while True:
            runnable = sorted(
                n for n, at in scheduler.at.items() if at != "done" and n not in model.asleep
            )
            if not runnable:
                break
            scheduler.step(rng.choice(runnable))
        assert not model.asleep, "the waiter sleeps although the ring was alerted"
        assert scheduler.at["waiter"] == "done"
    finally:
        alert.release()
        state.release()
