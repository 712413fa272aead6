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

With the order gateway (``load.source = "gateway"``), by far the busiest process of such
a run (~0.7 of a core with 2 clients, no stage over 0.1), the plan changes:

====== ==========================================================================
cores  plan with the gateway
====== ==========================================================================
≥ 3    the gateway on the highest core, alone; the five stages by the table above over
       the others (≥ 6: one core each, the lowest left to the system)
2      ingest + risk + persistence + output c0 · matching + gateway c1
1      every process on c0
====== ==========================================================================

Measured on 2 cores with 2 windowed clients (``perf/bench_gateway.py``'s case run 4 s a
time by a throwaway script, three alternating rounds of two runs per plan; to compare
plans, alternate ``perf/bench_gateway.py --quick --cpus ...`` runs; this host's speed moves
by a third): with the
gateway beside ingest under the stages' own plan, c0 ran ~94 % busy while c1 sat ~58 %
idle, and the median was 10.5 k orders/s; this table's plan 13.3 k (+26 %); the gateway
alone on c1 with all five stages on c0 15.0 k (+43 %), but that doubles a lone order's
send → ack (p50 ~2.5 → ~6 ms, alternating runs of 300 probes: risk and matching, each
other's producer and consumer, take turns on one core), where this plan keeps it. For
throughput first, name every core: ``cpus = { gateway = 1, ingest = 0, risk = 0,
matching = 0, persistence = 0, output = 0 }``. Stages ``cpus`` does not place, and the
gateway if it does not place it, follow this plan over the cores ``cpus`` left free.

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
#: stages that run only in some configurations, and the stage whose core a plan made
#: without them names for them (``plan(gateway=False)``; a run with the gateway plans it
#: with ``gateway_plan``)
COMPANIONS = {"gateway": "ingest"}
#: the SCHED_FIFO priority of a real-time stage: above every normal process, below the
#: kernel's own real-time threads (which run at 50 and up)
REALTIME_PRIORITY = 10

#: the stages of a run with the order gateway, in ``GATEWAY_ON_TWO``'s order
WITH_GATEWAY = (*STAGES, "gateway")
#: such a run's default plan on two cores: per process (``WITH_GATEWAY`` order) the index
#: of its core: matching and the gateway on the second, the four others on the first
GATEWAY_ON_TWO = (0, 0, 1, 0, 0, 1)

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


def gateway_plan(allowed: Iterable[int]) -> dict[str, int]:
    """The default plan of a run with the order gateway over ``allowed``: every stage's
    core and the gateway's (the module docstring)."""
    cores = sorted(set(allowed))
    if len(cores) >= 3:  # a core of its own; the stages plan over the rest
        return {**default_plan(cores[:-1]), "gateway": cores[-1]}
    if len(cores) == 2:
        return {stage: cores[i] for stage, i in zip(WITH_GATEWAY, GATEWAY_ON_TWO, strict=True)}
    return {**default_plan(cores), "gateway": cores[0]}  # one core (none: default_plan says)


def plan_cores(
    cpus: Mapping[str, int], allowed: Iterable[int], *, gateway: bool = False
) -> dict[str, int]:
    """Every stage's core (and, with ``gateway``, the order gateway's): those ``cpus``
    names where it says, the others by the default plan (``default_plan``, or
    ``gateway_plan`` when the gateway runs and ``cpus`` does not place it) over the
    allowed cores ``cpus`` left free (over all of them if none is free). ``cpus`` must
    have passed ``check_cpus``."""
    allowed = set(allowed)
    free = allowed - set(cpus.values()) or allowed
    defaults = gateway_plan(free) if gateway and "gateway" not in cpus else default_plan(free)
    names = WITH_GATEWAY if gateway else STAGES
    return {stage: cpus[stage] if stage in cpus else defaults[stage] for stage in names}


def plan(
    cpus: Mapping[str, int],
    *,
    gateway: bool = False,
    realtime: bool = False,
    nice: int | None = None,
    allowed: Iterable[int] | None = None,
) -> CpuPlan:
    """The ``CpuPlan`` of a ``[pipeline]`` section over ``allowed`` (default: this
    process's cores); ``gateway``: the order gateway runs (``gateway_plan``)."""
    allowed = allowed_cores() if allowed is None else set(allowed)
    cores = plan_cores(cpus, allowed, gateway=gateway)
    companions = {stage: cpus.get(stage, cores[beside]) for stage, beside in COMPANIONS.items()}
    if gateway:
        companions["gateway"] = cores.pop("gateway")
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
