"""CPU plans for hosts of 1 to 8 allowed cores (injected), the config's checks, and
``apply`` pinning (and prioritising) a real spawned process, or saying why it could not."""

from __future__ import annotations

import errno
import multiprocessing
import os
from pathlib import Path

import pytest

from pipeline import affinity
from pipeline.affinity import STAGES, CpuPlan, apply, check_cpus, default_plan, plan, plan_cores
from pipeline.config import PipelineConfig, load_config
from pipeline.topology import Topology

ING, RSK, MAT, PER, OUT = STAGES  # ingest, risk, matching, persistence, output


# --- plans -----------------------------------------------------------------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ({0}, {ING: 0, RSK: 0, MAT: 0, PER: 0, OUT: 0}),
        ({0, 1}, {ING: 0, RSK: 0, MAT: 1, PER: 0, OUT: 1}),
        ({0, 1, 2}, {ING: 0, RSK: 1, MAT: 2, PER: 0, OUT: 0}),
        ({0, 1, 2, 3}, {ING: 0, RSK: 1, MAT: 2, PER: 3, OUT: 3}),
        ({0, 1, 2, 3, 4}, {ING: 0, RSK: 1, MAT: 2, PER: 3, OUT: 4}),
        (set(range(8)), {ING: 3, RSK: 4, MAT: 5, PER: 6, OUT: 7}),
        (
            {2, 5},
            {ING: 2, RSK: 2, MAT: 5, PER: 2, OUT: 5},
        ),  # whatever the numbers (taskset, cgroups)
        ({7}, {ING: 7, RSK: 7, MAT: 7, PER: 7, OUT: 7}),
    ],
    ids=lambda x: f"{len(x)}-cores" if isinstance(x, set) else "",
)
def test_the_default_plan(allowed: set[int], expected: dict[str, int]) -> None:
    assert default_plan(allowed) == expected
    assert plan_cores({}, allowed) == expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize("n", range(1, 17))
def test_every_default_plan_keeps_to_the_allowed_cores_and_risk_apart_from_matching(n: int):
    allowed = set(range(100, 100 + n))
    cores = default_plan(allowed)
    assert list(cores) == list(STAGES) and set(cores.values()) <= allowed
    if n >= 2:
        assert cores[RSK] != cores[MAT]
    if n >= len(STAGES):
        assert len(set(cores.values())) == len(STAGES)
    else:
        assert set(cores.values()) == allowed  # every core is used


@pytest.mark.timeout(30)
def test_named_stages_go_where_the_config_says_and_the_rest_avoid_their_cores() -> None:
    assert plan_cores({RSK: 0}, set(range(8))) == {ING: 3, RSK: 0, MAT: 5, PER: 6, OUT: 7}
    assert plan_cores({RSK: 1}, {0, 1}) == {ING: 0, RSK: 1, MAT: 0, PER: 0, OUT: 0}
    # no core left free: the others follow the default plan over every allowed core
    expected = {ING: 0, RSK: 0, MAT: 1, PER: 0, OUT: 1}
    assert plan_cores({RSK: 0, MAT: 1}, {0, 1}) == expected
    every = {ING: 1, RSK: 1, MAT: 1, PER: 1, OUT: 1}
    assert plan_cores(every, {0, 1}) == every  # sharing is allowed when asked for


@pytest.mark.timeout(30)
def test_plan_carries_priority_and_says_who_shares_a_core() -> None:
    cpu_plan = plan({}, realtime=True, nice=-5, allowed={0, 1, 2, 3})
    assert cpu_plan == CpuPlan(
        {ING: 0, RSK: 1, MAT: 2, PER: 3, OUT: 3}, realtime=True, nice=-5, companions={"gateway": 0}
    )
    assert cpu_plan.sharing(PER) == [OUT] and cpu_plan.sharing(RSK) == []
    assert set(plan({}).cores.values()) <= os.sched_getaffinity(0)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("n", range(1, 9))
def test_with_three_cores_or_more_the_gateway_has_one_and_the_stages_plan_over_the_rest(n: int):
    """The gateway is a gateway run's busiest process (``pipeline.affinity``'s docstring)."""
    allowed = set(range(10, 10 + n))
    cpu_plan = plan({}, gateway=True, allowed=allowed)
    assert set(cpu_plan.cores.values()) | {cpu_plan.core("gateway")} <= allowed
    assert cpu_plan.cores[RSK] != cpu_plan.cores[MAT] or n == 1  # never take turns
    if n >= 3:
        assert cpu_plan.core("gateway") == max(allowed)
        assert cpu_plan.cores == default_plan(allowed - {max(allowed)})
        assert cpu_plan.sharing("gateway") == []


@pytest.mark.timeout(30)
def test_on_two_cores_matching_keeps_the_gateway_company_and_the_rest_share_the_other():
    cpu_plan = plan({}, gateway=True, allowed={0, 1})
    assert cpu_plan.cores == {ING: 0, RSK: 0, MAT: 1, PER: 0, OUT: 0}
    assert cpu_plan.companions == {"gateway": 1}
    assert cpu_plan.sharing("gateway") == [MAT]
    # one core: everything on it; without the gateway, the plan is the stages' own
    assert plan({}, gateway=True, allowed={4}).companions == {"gateway": 4}
    assert plan({}, allowed={0, 1}).cores == {ING: 0, RSK: 0, MAT: 1, PER: 0, OUT: 1}


@pytest.mark.timeout(30)
def test_the_gateway_goes_where_the_config_says_or_by_the_plan_over_the_cores_left():
    named = plan({"gateway": 0}, gateway=True, allowed={0, 1})
    assert named.core("gateway") == 0 and named.cores == {ING: 1, RSK: 1, MAT: 1, PER: 1, OUT: 1}
    # the config took one of two cores for risk: everything else on the other
    squeezed = plan({RSK: 1}, gateway=True, allowed={0, 1})
    assert squeezed.cores == {ING: 0, RSK: 1, MAT: 0, PER: 0, OUT: 0}
    assert squeezed.core("gateway") == 0
    # four cores, risk on one: the gateway alone on the highest of the three left
    three = plan({RSK: 3}, gateway=True, allowed={0, 1, 2, 3})
    assert three.core("gateway") == 2 and three.cores == {ING: 0, RSK: 3, MAT: 1, PER: 0, OUT: 1}
    # every stage named: a core left over is the gateway's
    every = dict.fromkeys(STAGES, 0)
    assert plan(every, gateway=True, allowed={0, 1, 2}).core("gateway") == 2


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("gateway", "allowed", "expected"),
    [
        (True, {0, 1}, {**dict.fromkeys(STAGES, "park"), "gateway": "park"}),
        (True, {0, 1, 2}, {**dict.fromkeys(STAGES, "park"), "gateway": "backoff"}),
        (False, {0, 1}, dict.fromkeys(STAGES, "park")),
        (True, set(range(6)), {**dict.fromkeys(STAGES, "backoff"), "gateway": "backoff"}),
        (True, {0}, {**dict.fromkeys(STAGES, "park"), "gateway": "park"}),
    ],
)
def test_each_process_waits_as_its_core_suits(gateway, allowed, expected, tmp_path) -> None:
    text = '[load]\nsource = "gateway"\n' if gateway else ""
    path = tmp_path / "run.toml"
    path.write_text(text)
    waits = Topology(load_config(path)).waits(allowed)
    assert waits == expected


# --- checks ----------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_check_cpus() -> None:
    assert check_cpus({ING: 0, RSK: 1}, {0, 1}, host_cores=2) is None
    assert check_cpus({"rsik": 0}, {0, 1}, host_cores=2) == (
        "pipeline.cpus names an unknown stage 'rsik': the stages are ingest, risk, matching, "
        "persistence, output, gateway - at `$.pipeline.cpus.rsik`"
    )
    assert check_cpus({RSK: 2}, {0, 1}, host_cores=2) == (
        "pipeline.cpus.risk = 2: this host has no core 2 (it has 2: 0-1); name one of 0-1 "
        "- at `$.pipeline.cpus.risk`"
    )
    assert check_cpus({MAT: 3}, {0, 1, 2, 6}, host_cores=8) == (
        "pipeline.cpus.matching = 3: this process may not run on core 3 (its affinity allows "
        "0-2,6, e.g. set by taskset or a cgroup); name one of those - at "
        "`$.pipeline.cpus.matching`"
    )


@pytest.mark.timeout(30)
def test_the_config_section_loads(tmp_path: Path) -> None:
    core = min(os.sched_getaffinity(0))
    path = tmp_path / "run.toml"
    path.write_text(f"[pipeline]\ncpus = {{ risk = {core} }}\nrealtime = true\nnice = -3\n")
    assert load_config(path).pipeline == PipelineConfig(
        cpus={RSK: core}, run_dir="run/pipeline", realtime=True, nice=-3
    )
    assert load_config(None).pipeline == PipelineConfig()


# --- apply -----------------------------------------------------------------------------------
def _pinned_child(cpu_plan: CpuPlan, stage: str, conn) -> None:  # type: ignore[no-untyped-def]
    """Apply the plan, report the warning, and stay alive until told to exit."""
    conn.send(apply(cpu_plan, stage))
    conn.recv()


def _run_pinned_child(cpu_plan: CpuPlan, stage: str) -> tuple[str | None, set[int], int]:
    """Apply ``cpu_plan`` in a spawned child: its warning, then its affinity and scheduling
    policy as this process sees them from outside."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=_pinned_child, args=(cpu_plan, stage, theirs))
    child.start()
    try:
        assert ours.poll(60), "the child did not report"
        warning = ours.recv()
        seen = (os.sched_getaffinity(child.pid), os.sched_getscheduler(child.pid))
        ours.send("exit")
        child.join(30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    return warning, *seen


@pytest.mark.timeout(90)
def test_apply_pins_a_spawned_process() -> None:
    core = max(os.sched_getaffinity(0))
    cpu_plan = plan({RSK: core})
    warning, cores, policy = _run_pinned_child(cpu_plan, RSK)
    assert warning is None
    assert cores == {core}
    assert policy == os.SCHED_OTHER
    assert os.sched_getaffinity(0) != {core} or len(os.sched_getaffinity(0)) == 1  # not us


@pytest.mark.timeout(90)
def test_apply_realtime_in_a_spawned_process_is_done_or_explained() -> None:
    """As root (or with an rtprio limit) the child runs SCHED_FIFO; otherwise it says why
    not and runs as before. Either way it is pinned and alive."""
    core = max(os.sched_getaffinity(0))
    cpu_plan = CpuPlan({s: core if s == RSK else -1 for s in STAGES}, realtime=True)
    warning, cores, policy = _run_pinned_child(cpu_plan, RSK)
    assert cores == {core}
    if warning is None:
        assert policy == os.SCHED_FIFO
    else:
        assert warning.startswith("warning: stage risk: SCHED_FIFO not permitted (")
        assert "CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 10 (ulimit -r)" in warning
        assert policy == os.SCHED_OTHER


class _Calls:
    """Stand-ins for the os scheduling calls (this process must stay as it is)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, refuse: set[str] = frozenset()) -> None:
        self.made: list[tuple] = []
        for name in ("sched_setaffinity", "sched_setscheduler", "setpriority"):
            monkeypatch.setattr(os, name, self._fake(name, name in refuse))

    def _fake(self, name: str, refuse: bool):  # type: ignore[no-untyped-def]
        def call(*args: object) -> None:
            self.made.append((name, *args))
            if refuse:
                code = errno.EINVAL if name == "sched_setaffinity" else errno.EPERM
                raise OSError(code, os.strerror(code))

        return call


@pytest.mark.timeout(30)
def test_apply_warns_instead_of_failing_where_not_permitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Calls(monkeypatch, refuse={"sched_setscheduler", "setpriority"})
    cpu_plan = CpuPlan({ING: 0, RSK: 1, MAT: 2, PER: 3, OUT: 3}, realtime=True, nice=-10)
    assert apply(cpu_plan, MAT) == (
        "warning: stage matching: nice -10 not permitted (Operation not permitted): lowering "
        "nice needs CAP_SYS_NICE or a raised RLIMIT_NICE (ulimit -e); SCHED_FIFO not "
        "permitted (Operation not permitted): it needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at "
        "least 10 (ulimit -r); running at normal priority"
    )
    assert [c[0] for c in calls.made] == ["sched_setaffinity", "setpriority", "sched_setscheduler"]
    assert calls.made[0] == ("sched_setaffinity", 0, {2})
    assert calls.made[2][3].sched_priority == affinity.REALTIME_PRIORITY


@pytest.mark.timeout(30)
def test_apply_keeps_a_stage_that_shares_its_core_off_real_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Calls(monkeypatch)
    cpu_plan = CpuPlan({ING: 0, RSK: 1, MAT: 2, PER: 3, OUT: 3}, realtime=True)
    assert apply(cpu_plan, OUT) == (
        "warning: stage output: not real-time: core 3 is shared with persistence, which a "
        "real-time stage would starve; give it a core of its own"
    )
    assert [c[0] for c in calls.made] == ["sched_setaffinity"]
    assert apply(cpu_plan, RSK) is None  # a core of its own: raised
    assert calls.made[-1][0] == "sched_setscheduler"


@pytest.mark.timeout(30)
def test_apply_says_when_the_pin_itself_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _Calls(monkeypatch, refuse={"sched_setaffinity"})
    assert apply(CpuPlan({s: 5 for s in STAGES}), ING) == (
        "warning: stage ingest: not pinned to core 5: Invalid argument"
    )
