"""What one benchmark runs: the settings of ``collabvr bench``, their defaults and their checks.

The CLI takes its defaults from here, so the command line and the library never disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from collabvr import prices as price_table
from collabvr.bench.suites import Suite, parse_suite
from collabvr.bench.suites.evalkit import ENTRIES as EVALKIT_ENTRIES
from collabvr.bench.suites.sim import SimSuite
from collabvr.context import SEED_MAX, make_context
from collabvr.errors import BadInput
from collabvr.graph import parse_method
from collabvr.location import RunPath

# settings that change what an episode does: a rerun into the same DIR must keep them
_PINNED = ("vgm", "vlm", "vgm_options", "vlm_options", "budget", "size", "context", "cache")


@dataclasses.dataclass
class BenchConfig:
    """One benchmark: what to run, on which backends, how many, how fast, where."""

    out: RunPath  # a directory, or a URL (s3://bucket/prefix): see collabvr.location
    suite: str = "sim"
    methods: list[str] = dataclasses.field(default_factory=lambda: ["collabvr"])
    n: int = 50
    seed: int = 0
    concurrency: int = 8
    backend_limit: int = 0  # concurrent calls per backend spec; 0: as many as episodes
    vgm: str = "sim:weak"
    vlm: str = "sim:accurate"
    vgm_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    vlm_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    budget: str = ""  # "", "SECONDS", or "match:METHOD"
    # clip-seconds per sim instance ("FAMILY/DIFFICULTY/SEED"), over the budget above (benchmarks/cost_matched.py)
    instance_budgets: dict[str, float] = dataclasses.field(default_factory=dict)
    cache: bool = True
    size: int = 128
    context: dict[str, Any] = dataclasses.field(default_factory=dict)  # other Context fields (max_steps, ...)
    prices: dict[str, dict[str, Any]] = dataclasses.field(default_factory=price_table.load_prices)
    max_cost: float = 0.0  # USD; no episode starts once the episodes run cost this much (0: no cap)
    runs: int = 1  # benchmark suites: generated videos per sample (seeds seed..seed+runs-1); Gen-ViRe's scripts expect 5
    judge_vlm: str = ""  # the judge ("provider:model"); empty: the run's VLM judges tasks with a rubric
    judge_vlm_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    judge_repeats: int = 1  # judge calls per video (the paper's protocol; not Gen-ViRe's official one)
    strict: bool = False  # tables score a failed judge call 0 instead of dropping it (the official way)
    strict_memory: bool = False  # refuse (BadInput) instead of lowering --concurrency when memory would run out
    all_samples: bool = False  # Gen-ViRe: every id of the eval jsons, not only the official three per subtask
    # VBVR: score the videos, floors and ceilings with this VBVR-EvalKit clone when the bench ends (not pinned)
    evalkit: str = ""
    evalkit_entry: str = "run_evaluation"  # or "evaluate": the kit's two entry points give different scores
    evalkit_python: str = ""  # the interpreter with the kit's requirements ("": this one)
    # where episodes run (not pinned: a run started on one executor resumes on the other; docs/scaling.md)
    executor: str = "local"  # "local": threads of this process; "ray": Ray tasks on a cluster
    address: str = ""  # ray: the cluster to connect to ("auto", "HOST:PORT", "ray://HOST:PORT"); "": start a local one
    ray_workers: int = 0  # ray, local cluster: its CPUs, one episode each (0: all of this machine's)
    gpus_per_model: int = 1  # ray: GPUs per actor holding the heavy local models (one actor per that many GPUs)

    def check(self) -> None:
        """Fail before any work, naming the bad argument and what it accepts."""
        if not isinstance(self.n, int) or self.n < 1:
            raise BadInput(f"--n must be a whole number >= 1, got {self.n!r}")
        span = max(self.n, self.runs) if isinstance(self.runs, int) else self.n  # sim seeds, or a sample's runs
        if not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX - span + 1:
            raise BadInput(f"--seed must be a whole number >= 0 whose seeds SEED..SEED+N-1 stay at most {SEED_MAX}, "
                           f"got --seed {self.seed!r} with --n {self.n}")
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise BadInput(f"--concurrency must be a whole number >= 1, got {self.concurrency!r}")
        if not isinstance(self.backend_limit, int) or self.backend_limit < 0:
            raise BadInput(f"--backend-limit must be a whole number >= 0 (0: no extra limit), got {self.backend_limit!r}")
        if not isinstance(self.max_cost, int | float) or self.max_cost < 0:
            raise BadInput(f"--max-cost must be a number of USD >= 0 (0: no cap), got {self.max_cost!r}")
        for name in ("runs", "judge_repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInput(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        self.check_executor()
        if not self.methods:
            raise BadInput("--methods is empty; give e.g. collabvr,pass@4")
        if len(set(self.methods)) != len(self.methods):
            raise BadInput(f"--methods names a method twice: {','.join(self.methods)}")
        for method in self.methods:
            parse_method(method)
        suite = self.suite_of()
        if self.evalkit and suite.kind != "vbvr":
            raise BadInput(f"--evalkit scores a VBVR-Bench suite with VBVR-EvalKit; suite {self.suite!r} is not one")
        if self.evalkit_entry not in EVALKIT_ENTRIES:
            raise BadInput(f"--evalkit-entry must be one of {', '.join(EVALKIT_ENTRIES)}, got {self.evalkit_entry!r}")
        self.match_method()
        self.fixed_budget()
        for key, value in self.instance_budgets.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise BadInput(f"instance budget {key!r} must be a number of clip-seconds >= 0 (0: no limit), got {value!r}")
        make_context(**self.context)  # validates the other context fields
        total, made_of = self.episodes()
        if total > MOST_EPISODES:
            raise BadInput(f"--n {self.n} names {total:,} episodes ({made_of}); one benchmark runs at most "
                           f"{MOST_EPISODES:,}: lower --n, or split the seeds (--seed) over several --out directories")

    def episodes(self) -> tuple[int, str]:
        """(how many episodes this benchmark names, how that count is made up), counted without
        listing them, so a huge --n is answered at once."""
        methods, suite = len(self.ordered_methods()), self.suite_of()
        if isinstance(suite, SimSuite):
            cells = len(suite.cells)
            return methods * cells * self.n, f"{counted(methods, 'method')} x {counted(cells, 'cell')} x {counted(self.n, 'seed')}"
        samples = len(suite.samples(self.n, self.seed))
        return (methods * samples * self.runs,
                f"{counted(methods, 'method')} x {counted(samples, 'sample')} x {counted(self.runs, 'run')}")

    def check_executor(self) -> None:
        if self.executor not in EXECUTORS:
            raise BadInput(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        for name, least in (("gpus_per_model", 1), ("ray_workers", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise BadInput(f"--{name.replace('_', '-')} must be a whole number >= {least}, got {value!r}")
        if self.executor != "ray" and (self.address or self.ray_workers):
            raise BadInput(f"--{'address' if self.address else 'ray-workers'} needs --executor ray")
        if self.address and self.ray_workers:
            raise BadInput("--ray-workers sizes a local Ray cluster; a cluster at --address has its own workers")

    def backends(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(role, spec, options) of every backend the episodes use: the VGM, the VLM and a --judge-vlm."""
        found = [("vgm", self.vgm, dict(self.vgm_options)), ("vlm", self.vlm, dict(self.vlm_options))]
        if self.judge_vlm:
            found.append(("vlm", self.judge_vlm, dict(self.judge_vlm_options)))
        return found

    def specs(self) -> list[str]:
        return [spec for _, spec, _ in self.backends()]

    def match_method(self) -> str | None:
        kind, sep, method = self.budget.strip().partition(":")
        if kind == "match" and sep:
            parse_method(method)
            return method.strip()
        return None

    def fixed_budget(self) -> float:
        """The clip-seconds budget per episode; 0 means none (or a matched one)."""
        text = self.budget.strip()
        if not text or text.startswith("match:"):
            return 0.0
        try:
            value = float(text)
        except ValueError:
            raise BadInput(f"--budget must be a number of clip-seconds >= 0 or match:METHOD, got {text!r}") from None
        if value < 0 or value != value:
            raise BadInput(f"--budget must be a number of clip-seconds >= 0 (0: no limit), got {text!r}")
        return value

    def ordered_methods(self) -> list[str]:
        """The methods in run order: a budget-matched method first (added if not listed)."""
        match = self.match_method()
        if match is None:
            return list(self.methods)
        return [match, *[m for m in self.methods if m != match]]

    def suite_of(self) -> Suite:
        """The suite, loaded and checked once per spec in this process."""
        return _suite(self.suite, self.all_samples)

    def pinned(self) -> dict[str, Any]:
        pinned = {k: getattr(self, k) for k in _PINNED}
        # only when set: sim runs keep their bench.json
        for k in ("judge_vlm", "judge_vlm_options", "judge_repeats", "runs", "all_samples", "instance_budgets"):
            if getattr(self, k) != _DEFAULTS[k]:
                pinned[k] = getattr(self, k)
        return json.loads(json.dumps(pinned, default=str))


EXECUTORS = ("local", "ray")
MOST_EPISODES = 1_000_000  # every episode is listed before the first starts: a typo in --n must not fill the memory
_DEFAULTS = {"judge_vlm": "", "judge_vlm_options": {}, "judge_repeats": 1, "runs": 1, "all_samples": False,
             "instance_budgets": {}}


def counted(n: int, noun: str) -> str:
    """``1 episode``, ``1,800 episodes``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@functools.lru_cache(maxsize=16)
def _suite(spec: str, all_samples: bool = False) -> Suite:
    return parse_suite(spec, all_samples=all_samples)
