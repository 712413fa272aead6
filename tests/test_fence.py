"""The cursor accessors emit real release/acquire operations where the hardware needs them."""

from __future__ import annotations

import multiprocessing
import re

import numpy as np
import pytest

from ringbuffer import Ring, fence
from tests import ringworkers
from tests.ringhelpers import RECORD, reap

ATOMIC_STORE = re.compile(r"store atomic i64 %\S+, ptr %\S+ (\w+), align 8")
ATOMIC_LOAD = re.compile(r"load atomic i64, ptr %\S+ (\w+), align 8")


def test_compiled_accessors_emit_release_store_and_acquire_load():
    ir = fence.llvm_ir()
    assert ATOMIC_STORE.search(ir).group(1) == "release", ir
    assert ATOMIC_LOAD.search(ir).group(1) == "acquire", ir


def test_compiled_accessors_read_and_write_the_cursor():
    cell = np.full(2, -1, dtype=np.int64)
    view = memoryview(cell).cast("B").cast("q")
    load, store = fence.cursor_accessors(view, cell.ctypes.data, ordered=False)
    store(1 << 40)
    assert cell[0] == 1 << 40
    assert load() == 1 << 40
    assert cell[1] == -1, "the store wrote exactly 8 bytes"


def test_aarch64_lowering_is_stlr_and_ldar():
    llvm = pytest.importorskip("llvmlite.binding")
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    try:
        target = llvm.Target.from_triple("aarch64-unknown-linux-gnu")
    except RuntimeError:
        pytest.skip("this LLVM build has no AArch64 backend")
    # Lower the very orderings numba emitted for our accessors to aarch64 code.
    ir = fence.llvm_ir()
    store_order = ATOMIC_STORE.search(ir).group(1)
    load_order = ATOMIC_LOAD.search(ir).group(1)
    module = llvm.parse_assembly(
        f"define void @st(ptr %p, i64 %v) {{\n"
        f"  store atomic i64 %v, ptr %p {store_order}, align 8\n  ret void\n}}\n"
        f"define i64 @ld(ptr %p) {{\n"
        f"  %r = load atomic i64, ptr %p {load_order}, align 8\n  ret i64 %r\n}}\n"
    )
    assembly = target.create_target_machine().emit_assembly(module)
    assert "stlr" in assembly, assembly
    assert "ldar" in assembly, assembly


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stream_through_the_compiled_fence_path_between_processes(monkeypatch):
    monkeypatch.setenv("TRADEPIPE_FORCE_FENCES", "1")
    spawn = multiprocessing.get_context("spawn")
    total = 1_000_000
    with Ring.create("fenced", RECORD, 1 << 12, consumers=["c"]) as ring:
        results = spawn.Queue()
        consumer = spawn.Process(target=ringworkers.consume, args=(ring.name, "c", total, results))
        producer = spawn.Process(target=ringworkers.produce, args=(ring.name, total, 64))
        consumer.start()
        producer.start()
        try:
            assert results.get(timeout=240) == ("c", total, None)
        finally:
            reap([producer, consumer])
    # and the children really ran the compiled path, not the x86 plain stores
    modes = spawn.Queue()
    probe = spawn.Process(target=ringworkers.report_fence_mode, args=(modes,))
    probe.start()
    try:
        assert modes.get(timeout=60) is False, "HARDWARE_ORDERED must be off under the override"
    finally:
        probe.join(30)
        if probe.is_alive():
            probe.kill()
            probe.join()


def test_fallback_fences_emit_a_full_barrier_and_store_the_cursor():
    """Without membarrier the park handshake uses a compiled seq_cst fence on both sides."""
    ir = fence.llvm_ir()
    assert "fence seq_cst" in ir, ir
    cell = np.full(2, -1, dtype=np.int64)
    view = memoryview(cell).cast("B").cast("q")
    load, store = fence.cursor_accessors(view, cell.ctypes.data, fenced=True)
    store(7)
    assert cell[0] == 7
    assert load() == 7
    assert cell[1] == -1, "the fenced store wrote exactly 8 bytes"


def test_a_full_fence_lowers_to_a_locked_op_on_x86_and_dmb_on_aarch64():
    llvm = pytest.importorskip("llvmlite.binding")
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    module = "define void @f() {\n  fence seq_cst\n  ret void\n}\n"
    lowered = {}
    for triple in ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"):
        try:
            target = llvm.Target.from_triple(triple)
        except RuntimeError:
            continue
        machine = target.create_target_machine()
        lowered[triple] = machine.emit_assembly(llvm.parse_assembly(module))
    if not lowered:
        pytest.skip("this LLVM build has neither backend")
    for triple, assembly in lowered.items():  # x86: mfence or a locked op (lock orl $0)
        full_barrier = r"\bmfence\b|\block\b" if triple.startswith("x86") else r"\bdmb\s+ish\b"
        assert re.search(full_barrier, assembly), assembly


def test_waiter_fence_runs_where_the_host_offers_membarrier():
    """Registered writers need no fence of their own only if membarrier works here."""
    if not fence.MEMBARRIER:
        assert fence.asymmetric_fence_ready() is False
    else:
        assert fence.asymmetric_fence_ready() is True
    fence.waiter_fence()  # either path must return (and not raise)
