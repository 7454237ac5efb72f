"""Benchmark episodes as Ray tasks on a cluster: ``collabvr bench --executor ray [--address ADDR]``.

Only this module imports Ray (the optional extra ``collabvr[ray]``); the runner imports it when a
bench asks for it. What runs where (docs/scaling.md):

- **The driver** (the process running the bench) is, as with the local executor, the one writer of
  ``results.jsonl`` and of the report. It keeps ``concurrency`` episodes in flight, each a Ray task
  named ``episode METHOD/CELL-SEED`` (the dashboard lists them), skips finished episodes, honours
  ``--max-cost`` and ``match:METHOD`` phases, and appends each line the tasks return.
- **An episode task** runs one episode with the local runner's own code
  (:func:`collabvr.bench.episode.episode_record`). Its LangGraph checkpoints go to
  ``<run dir>/checkpoints.sqlite``, one SQLite file per episode opened by one process at a time in
  exclusive locking mode (no shared-memory WAL index), which is sound on a network file system where
  one SQLite file shared by every node is not.
- **Heavy local models** (providers with :func:`collabvr.backends.registry.needs_gpu`) live in
  :class:`ModelHost` actors, one per ``gpus_per_model`` GPUs of the cluster (one CPU-only actor on a
  cluster without GPUs). Each host builds every heavy backend of the bench once, when the bench
  starts. Episodes hold :class:`OnActors` stand-ins whose calls take a free host from a
  :class:`Slots` queue (the host puts itself back when the call ends), so a call waits only while
  every host is busy and no GPU idles while calls wait; a host runs one call at a time.
- **Other backends** are built in each task's process, as locally; with ``--backend-limit`` each
  (role, spec) of them gets one :class:`Slots` actor of that many leases, a cluster-wide semaphore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayTaskError

from collabvr.backends import registry
from collabvr.bench import limits
from collabvr.bench.config import BenchConfig
from collabvr.bench.episode import Job, episode_record, lost_record
from collabvr.errors import BadInput
from collabvr.graph import compiled, parse_method
from collabvr.location import is_remote, local_dir, path_of
from collabvr.rundir import CHECKPOINTS
from collabvr.runner import sqlite_saver

# the backend protocols' methods, looked up on the backend itself (a wrapper may pass them on by __getattr__)
_PROTOCOL = ("generate", "plan", "verify", "select", "judge", "critique", "preflight", "billed_seconds")
_HOST_ONLY = {"close"}  # a host's models are freed when the bench ends, never by an episode


@ray.remote(num_cpus=0)
class Slots:
    """A cluster-wide semaphore whose leases are items (host indices, or tokens), handed out first come first served."""

    def __init__(self, items: list[Any]) -> None:
        self.free: asyncio.Queue[Any] = asyncio.Queue()
        for item in items:
            self.free.put_nowait(item)

    async def lease(self) -> Any:
        return await self.free.get()

    async def release(self, item: Any) -> None:
        self.free.put_nowait(item)


@contextmanager
def lease(slots: Any) -> Iterator[Any]:
    """One lease of a :class:`Slots` actor, held for the block."""
    item = unwrapped(slots.lease.remote())
    try:
        yield item
    finally:
        slots.release.remote(item)


def unwrapped(refs: Any) -> Any:
    """``ray.get``, raising a remote call's own exception (a backend's typed error stays typed)."""
    try:
        return ray.get(refs)
    except RayTaskError as exc:
        cause = exc.cause
        raise (cause if isinstance(cause, Exception) else exc) from None


@dataclasses.dataclass(frozen=True)
class Shape:
    """What an episode's process needs to know of a backend that lives in a host: its plain
    attributes (``name``, ``model``...) and the names of the methods it offers."""

    attrs: dict[str, Any]
    methods: frozenset[str]


def shape_of(backend: Any) -> Shape:
    methods = {name for name in dir(type(backend)) if not name.startswith("_")
               and inspect.isfunction(inspect.getattr_static(type(backend), name, None))}
    methods |= {name for name in _PROTOCOL if callable(getattr(backend, name, None))}
    methods = {name for name in methods - _HOST_ONLY if not inspect.iscoroutinefunction(getattr(backend, name))}
    attrs = {name: value for name in dir(backend) if not name.startswith("_") and name not in methods
             and isinstance(value := inspect.getattr_static(backend, name, None), str | int | float | bool)}
    return Shape(attrs, frozenset(methods))


@ray.remote(num_cpus=0)
class ModelHost:
    """One GPU (or ``gpus_per_model`` GPUs): the bench's heavy backends, each built once here, called
    one at a time (Ray runs an actor's calls in order). After each call the host puts itself back in
    the queue of free hosts, so a host is never lost with an episode that dies waiting for it."""

    def __init__(self, index: int, free: Any) -> None:
        self.index, self.free = index, free

    def build(self, role: str, spec: str, options: dict[str, Any]) -> Shape:
        return shape_of(registry.resolve(role, spec, options))  # type: ignore[arg-type]

    def call(self, role: str, spec: str, options: dict[str, Any], method: str, args: tuple, kwargs: dict) -> Any:
        try:
            return getattr(registry.resolve(role, spec, options), method)(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            self.free.release.remote(self.index)


def _key(role: str, spec: str, options: dict[str, Any]) -> str:
    provider, model = registry.parse_spec(spec)
    return json.dumps([role, f"{provider}:{model}", options], sort_keys=True, default=str)


@dataclasses.dataclass(frozen=True)
class Hosts:
    """The model hosts of one bench, the queue of the free ones, and the shapes of their backends."""

    hosts: list[Any]
    free: Any
    shapes: dict[str, Shape]
    providers: list[str]


class OnActors:
    """A heavy backend's stand-in in an episode's process: each call runs on a free :class:`ModelHost`."""

    def __init__(self, hosts: Hosts, role: str, spec: str, options: dict[str, Any]) -> None:
        key = _key(role, spec, options)
        if key not in hosts.shapes:
            raise BadInput(f"{role} {spec} with these options was not loaded when the bench started")
        self._hosts, self._call, self._shape = hosts, (role, spec, options), hosts.shapes[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._shape.attrs:
            return self._shape.attrs[name]
        if name not in self._shape.methods:
            raise AttributeError(f"{self._call[1]} has no {name}")

        def call(*args: Any, **kwargs: Any) -> Any:
            i = unwrapped(self._hosts.free.lease.remote())  # the host gives itself back when the call ends
            return unwrapped(self._hosts.hosts[i].call.remote(*self._call, name, args, kwargs))

        return call


def _on_actors(hosts: Hosts, provider: str) -> registry.Factory:
    def make(role: str, model: str, options: dict[str, Any]) -> OnActors:
        return OnActors(hosts, role, f"{provider}:{model}", options)

    return make


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where an episode's backends are: the hosts of the heavy ones, the slot actors of the limited ones."""

    hosts: Hosts | None
    limits: dict[tuple[str, str], Any]  # (role, "provider:model") -> Slots


@contextmanager
def remote_backends(plan: Plan) -> Iterator[None]:
    """In this process, for the block: heavy providers resolve to :class:`OnActors`, and every call
    of a limited backend holds a lease of its (role, spec)'s slot actor."""
    with ExitStack() as stack:
        if plan.hosts is not None:
            stack.enter_context(registry.overriding({p: _on_actors(plan.hosts, p) for p in plan.hosts.providers}))
        if plan.limits:
            providers = [registry.parse_spec(spec)[0] for _, spec in plan.limits]
            stack.enter_context(limits.backend_limits(providers, functools.partial(_held, plan)))
        yield


def _held(plan: Plan, role: str, spec: str) -> Any:
    """What a call of (role, spec) holds: a lease of its slot actor (none for a spec the bench did not name)."""
    slots = plan.limits.get((role, spec))
    return nullcontext if slots is None else functools.partial(lease, slots)


def _start_hosts(config: BenchConfig, heavy: list[tuple[str, str, dict[str, Any]]]) -> Hosts:
    """One host per ``gpus_per_model`` GPUs of the cluster (one without a GPU on a cluster that has
    none), each building every heavy backend now: a bad checkpoint fails before any episode."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    per = config.gpus_per_model
    if gpus and gpus < per:
        raise BadInput(f"--gpus-per-model {per}: the Ray cluster has only {gpus} GPU(s)")
    count, per = (gpus // per, per) if gpus else (1, 0)
    free = Slots.remote(list(range(count)))
    hosts = [ModelHost.options(num_gpus=per).remote(i, free) for i in range(count)]
    shapes = {}
    for role, spec, options in heavy:
        spec = "{}:{}".format(*registry.parse_spec(spec))  # as the stand-ins name it, so a host builds it once
        shapes[_key(role, spec, options)] = unwrapped([h.build.remote(role, spec, options) for h in hosts])[0]
    providers = list(dict.fromkeys(registry.parse_spec(spec)[0] for _, spec, _ in heavy))
    return Hosts(hosts, free, shapes, providers)


def _plan(config: BenchConfig) -> Plan:
    heavy = [b for b in config.backends() if registry.needs_gpu(registry.parse_spec(b[1])[0])]
    hosts = _start_hosts(config, heavy) if heavy else None
    limited = {}
    for role, spec, _ in config.backends() if config.backend_limit else []:
        provider, model = registry.parse_spec(spec)
        if (hosts is None or provider not in hosts.providers) and (role, f"{provider}:{model}") not in limited:
            limited[(role, f"{provider}:{model}")] = Slots.remote(list(range(config.backend_limit)))
    return Plan(hosts, limited)


def _connect(config: BenchConfig) -> bool:
    """Join the cluster at ``config.address``, or start a local one; True when this call started Ray
    (so it stops it). A Ray already initialized in this process (a notebook, the tests) is used as is."""
    if ray.is_initialized():
        return False
    if config.address:
        _answers(config.address)
        ray.init(address=config.address)
    else:
        ray.init(num_cpus=config.ray_workers or None)
    return True


def _answers(address: str) -> None:
    """ConnectionError at once when nothing listens at a HOST:PORT head address, where ray.init would
    retry for half a minute first ("auto" and other forms are Ray's to resolve)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Ray head at {address}: {exc.strerror or exc}") from None


@contextmanager
def cluster(config: BenchConfig) -> Iterator[Any]:
    """For the block: Ray connected, the model hosts and slot actors up, this process's heavy
    backends pointing at the hosts; yields the executor (``execute(bench, jobs)``)."""
    local = [spec for spec in config.specs() if registry.in_process_only(registry.parse_spec(spec)[0])]
    if local:
        raise BadInput(f"backend provider of {local[0]!r} is registered in this process only; Ray workers find "
                       "providers through the collabvr.backends entry-point group (docs/backends.md)")
    started = _connect(config)
    plan = Plan(None, {})
    try:
        plan = _plan(config)
        with remote_backends(plan):
            yield functools.partial(_execute, plan)
    finally:
        actors = [*plan.limits.values(), *([plan.hosts.free, *plan.hosts.hosts] if plan.hosts else [])]
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


@ray.remote(num_cpus=1)
def _episode(config: BenchConfig, job: Job, budget: float, priced: tuple[str, str], plan: Plan) -> dict[str, Any]:
    """One episode in a worker process, checkpointed in its own run directory; returns its line."""
    path = local_dir(str(path_of(config.out) / job.run_dir)) / CHECKPOINTS  # a remote run's: this node's cache
    path.parent.mkdir(parents=True, exist_ok=True)
    name = parse_method(job.method)[0]
    with remote_backends(plan), sqlite_saver(path, exclusive=True) as saver:
        graph = compiled(name).copy(update={"checkpointer": saver})  # compiled once per worker process
        return episode_record(config, job, graph, budget=budget, priced=priced)


def _execute(plan: Plan, bench: Any, jobs: list[Job]) -> None:
    """Run ``jobs`` as tasks, ``concurrency`` at a time, appending each line through ``bench.add``
    (a :class:`collabvr.bench.runner.Bench`) as it comes back."""
    out = bench.config.out
    config = dataclasses.replace(bench.config, out=out if is_remote(out) else Path(out).resolve())  # the same on every node
    shared = ray.put(config), ray.put(plan)
    pending: dict[Any, Job] = {}
    queue = iter(jobs)

    def submit() -> None:
        for job in queue:
            if bench.over_budget():
                continue
            cell = job.run_dir.split("/", 2)[-1]
            ref = _episode.options(name=f"episode {job.method}/{cell}").remote(
                shared[0], job, bench.budget_for(job), bench.priced, shared[1])
            pending[ref] = job
            return

    try:
        for _ in range(config.concurrency):
            submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a lost worker or node: an error line, retried next run
                record = lost_record(config, job, exc, priced=bench.priced)
            bench.add(record)
            submit()
    finally:
        for ref in pending:  # an exception or Ctrl-C here: stop the episodes still running
            ray.cancel(ref, force=True)
