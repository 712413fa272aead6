"""CPU pinning and priority for the stage processes: which core each stage gets, checked
against what this host allows, and applying it inside a stage process.

``plan_cores(cpus, allowed)`` turns the config's ``[pipeline] cpus`` (stage → core, any
subset) into a core for every stage. Stages the config names go where it says; the others
follow the default plan over the allowed cores the config left free (all of them if it
left none). The default plan, for the stages in pipeline order (ingest, risk, matching,
persistence, output) over the allowed cores sorted (c0 < c1 < ...):

====== ==========================================================================
cores  plan
====== ==========================================================================
≥ 5    one core each, on the five highest-numbered cores: the lowest, where interrupts
       and kernel housekeeping usually land, stay with the system and the supervisor
4      ingest c0 · risk c1 · matching c2 · persistence + output c3
3      ingest + persistence + output c0 · risk c1 · matching c2
2      ingest + risk + persistence c0 · matching + output c1
1      every stage on c0
====== ==========================================================================

With the order gateway (``load.source = "gateway"``) the gateway gets a core of its own,
the highest allowed one the config left free, and the five stages follow the plan above
over the cores left: 2 cores, every stage on c0 and the gateway on c1; 6, one each. It is
by far the busiest process of such a run: with 2 clients it spent ~0.7 of a core against
≤ 0.1 for any stage, and sharing c0 with ingest, risk and persistence under the 2-core
plan it was starved while c1 sat ~60 % idle (``perf/bench_gateway.py``: 13 k → 16-18 k
orders/s with a core of its own). On one core, or when the config's cores leave none
free for it, it shares ingest's core (its producer's, ``COMPANIONS``).

Risk and matching, the two busiest stages and each other's producer and consumer, are
kept apart whenever there are two cores. Persistence spends its time in write and fsync
(asleep in the kernel) and output is light, so they share first: persistence with ingest,
the producer of the ring it journals, output with matching, the producer of its events, so
each reads records still warm in its core's caches. The plan knows nothing of hyperthread
siblings: on an SMT host, name the cores (``docs/operations.md``, "Pinning").

``check_cpus`` is what the config refuses at load (an unknown stage, a core this host does
not have or this process may not use), with the path to the field; ``apply(plan, stage)``
pins the calling process and raises its priority if configured, returning a warning
instead of failing where the system does not permit it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: the stages, in pipeline order (the order of the default plan's table)
STAGES = ("ingest", "risk", "matching", "persistence", "output")
#: stages that run only in some configurations, and the stage whose core they share by
#: default: the order gateway (``load.source = "gateway"``) feeds ingest, which is light
COMPANIONS = {"gateway": "ingest"}
#: the SCHED_FIFO priority of a real-time stage: above every normal process, below the
#: kernel's own real-time threads (which run at 50 and up)
REALTIME_PRIORITY = 10

#: the default plan when there are fewer cores than stages: per stage (in STAGES order)
#: the index of its core among the allowed cores sorted
SHARED_PLANS = {
    1: (0, 0, 0, 0, 0),
    2: (0, 0, 1, 0, 1),
    3: (0, 1, 2, 0, 0),
    4: (0, 1, 2, 3, 3),
}


@dataclass(frozen=True)
class CpuPlan:
    """Where every stage runs (stage → core) and how it is prioritised."""

    cores: dict[str, int]
    realtime: bool = False  # SCHED_FIFO at REALTIME_PRIORITY, on a core of its own only
    nice: int | None = None  # None: left as inherited
    companions: dict[str, int] = field(default_factory=dict)  # COMPANIONS' cores

    def core(self, stage: str) -> int:
        """``stage``'s core (a companion stage's too)."""
        return self.cores[stage] if stage in self.cores else self.companions[stage]

    def sharing(self, stage: str) -> list[str]:
        """The other stages on ``stage``'s core."""
        core = self.core(stage)
        everyone = {**self.cores, **self.companions}
        return [s for s, c in everyone.items() if c == core and s != stage]


def allowed_cores() -> set[int]:
    """The cores this process may run on (its affinity mask, e.g. from a cgroup or taskset)."""
    return set(os.sched_getaffinity(0))


def default_plan(allowed: Iterable[int]) -> dict[str, int]:
    """Every stage's core under the default plan over ``allowed`` (see the module's table)."""
    cores = sorted(set(allowed))
    if not cores:
        raise ValueError("no cores allowed")
    if len(cores) >= len(STAGES):
        return dict(zip(STAGES, cores[-len(STAGES) :], strict=True))
    return {stage: cores[i] for stage, i in zip(STAGES, SHARED_PLANS[len(cores)], strict=True)}


def own_gateway_core(cpus: Mapping[str, int], allowed: Iterable[int]) -> int | None:
    """The core the order gateway gets to itself when ``cpus`` does not name one: the
    highest allowed core ``cpus`` left free, as long as the stages it does not name keep
    at least one other; None when there is no such core (it then shares ingest's)."""
    if "gateway" in cpus:
        return None
    free = set(allowed) - set(cpus.values())
    unnamed = any(stage not in cpus for stage in STAGES)
    return max(free) if len(free) >= (2 if unnamed else 1) else None


def plan_cores(
    cpus: Mapping[str, int], allowed: Iterable[int], *, gateway: bool = False
) -> dict[str, int]:
    """Every stage's core: those ``cpus`` names where it says, the others by the default
    plan over the allowed cores ``cpus`` left free (over all of them if none is free).
    With ``gateway`` (the order gateway runs), a core of its own (``own_gateway_core``) is
    not free either. ``cpus`` must have passed ``check_cpus``."""
    allowed = set(allowed)
    taken = set(cpus.values())
    own = own_gateway_core(cpus, allowed) if gateway else None
    if own is not None:
        taken.add(own)
    defaults = default_plan(allowed - taken or allowed)
    return {stage: cpus.get(stage, defaults[stage]) for stage in STAGES}


def plan(
    cpus: Mapping[str, int],
    *,
    gateway: bool = False,
    realtime: bool = False,
    nice: int | None = None,
    allowed: Iterable[int] | None = None,
) -> CpuPlan:
    """The ``CpuPlan`` of a ``[pipeline]`` section over ``allowed`` (default: this
    process's cores); ``gateway``: the order gateway runs and, unless ``cpus`` says
    otherwise, gets a core of its own where there is one (the module docstring)."""
    allowed = allowed_cores() if allowed is None else set(allowed)
    cores = plan_cores(cpus, allowed, gateway=gateway)
    own = own_gateway_core(cpus, allowed) if gateway else None
    companions = {stage: cpus.get(stage, cores[beside]) for stage, beside in COMPANIONS.items()}
    if own is not None:
        companions["gateway"] = own
    return CpuPlan(cores, realtime, nice, companions)


def _ranges(cores: Iterable[int]) -> str:
    """``0-3,6`` for {0, 1, 2, 3, 6}."""
    out: list[str] = []
    for core in sorted(cores):
        if out and out[-1].rsplit("-", 1)[-1] == str(core - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{core}"
        else:
            out.append(str(core))
    return ",".join(out)


def check_cpus(
    cpus: Mapping[str, int], allowed: Iterable[int], host_cores: int | None = None
) -> str | None:
    """What is wrong with ``[pipeline] cpus`` on this host, with the field's path; None if
    nothing. ``host_cores``: how many cores the host has (default ``os.cpu_count()``)."""
    allowed = set(allowed)
    if host_cores is None:
        host_cores = os.cpu_count() or 0
    for stage, core in cpus.items():
        where = f"- at `$.pipeline.cpus.{stage}`"
        if stage not in STAGES and stage not in COMPANIONS:
            return (
                f"pipeline.cpus names an unknown stage {stage!r}: the stages are "
                f"{', '.join((*STAGES, *COMPANIONS))} {where}"
            )
        if core >= host_cores:
            return (
                f"pipeline.cpus.{stage} = {core}: this host has no core {core} (it has "
                f"{host_cores}: 0-{host_cores - 1}); name one of {_ranges(allowed)} {where}"
            )
        if core not in allowed:
            return (
                f"pipeline.cpus.{stage} = {core}: this process may not run on core {core} "
                f"(its affinity allows {_ranges(allowed)}, e.g. set by taskset or a cgroup); "
                f"name one of those {where}"
            )
    return None


def apply(cpu_plan: CpuPlan, stage: str) -> str | None:
    """Pin the calling process to ``stage``'s core and set its priority as planned.

    Returns None when all is done, else one warning line saying what was not (the process
    goes on, unpinned or at normal priority): a pin the system refuses, a ``nice`` below
    the current one without ``CAP_SYS_NICE``, ``SCHED_FIFO`` without ``CAP_SYS_NICE`` or an
    ``RLIMIT_RTPRIO``, or ``realtime`` on a core shared with another stage (a real-time
    stage that spins would starve its neighbour, so it is not raised).
    """
    warnings: list[str] = []
    core = cpu_plan.core(stage)
    try:
        os.sched_setaffinity(0, {core})
    except OSError as error:
        warnings.append(f"not pinned to core {core}: {error.strerror or error}")
    if cpu_plan.nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, cpu_plan.nice)
        except OSError as error:
            warnings.append(
                f"nice {cpu_plan.nice} not permitted ({error.strerror or error}): lowering "
                "nice needs CAP_SYS_NICE or a raised RLIMIT_NICE (ulimit -e)"
            )
    if cpu_plan.realtime:
        others = cpu_plan.sharing(stage)
        if others:
            warnings.append(
                f"not real-time: core {core} is shared with {', '.join(others)}, which a "
                "real-time stage would starve; give it a core of its own"
            )
        else:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
            except OSError as error:
                warnings.append(
                    f"SCHED_FIFO not permitted ({error.strerror or error}): it needs "
                    "CAP_SYS_NICE or an RLIMIT_RTPRIO of at least "
                    f"{REALTIME_PRIORITY} (ulimit -r); running at normal priority"
                )
    if not warnings:
        return None
    return f"warning: stage {stage}: " + "; ".join(warnings)
