"""LangSmith runs for every model call, when the standard environment turns tracing on.

``LANGSMITH_TRACING=true`` (with ``LANGSMITH_API_KEY``, and optionally ``LANGSMITH_ENDPOINT`` and
``LANGSMITH_PROJECT``) makes LangGraph trace the graph and each node; :func:`collabvr.nodes.common.call_vlm`
and :func:`collabvr.nodes.common.generate_clip` add one child run per model call under the node
that made it: an ``llm`` run per VLM role call (with ``usage_metadata`` as LangSmith reads it) and
a ``tool`` run per VGM generation. With tracing off nothing here does any work.

What a run carries: metadata (method, task id, step, attempt, role, verdict, repair strategy,
backend spec, clip-seconds, estimated cost) and tags; inputs and outputs described small (prompt
text, artifact refs, image and video sizes), never bytes or base64, and passed through
:func:`collabvr.errors.scrub`, so no API key reaches LangSmith.

Step, attempt and task id come from the node's state, which LangGraph records as the inputs of
the node's run (the parent of the model call's run); the method is ``metadata["method"]`` of the
run's config when the caller set one, else the name of the root graph run (a compiled method
graph is named after its method: ``collabvr``, ``single``, ``pass_at_k``, ...).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from collabvr.backends import registry
from collabvr.backends.api import Roles, estimated_cost, prompt_for
from collabvr.context import Context
from collabvr.errors import redact, scrub
from collabvr.media import Image, Video

MAX_TEXT = 2_000  # characters of one string kept in a run's inputs or outputs
MAX_ITEMS = 16  # items of one list kept


def enabled() -> bool:
    try:
        from langsmith import utils
    except ImportError:  # pragma: no cover - langsmith comes with langchain-core
        return False
    return bool(utils.tracing_is_enabled())


def describe(value: Any, depth: int = 0) -> Any:
    """Small JSON for a run's inputs or outputs: media become their sizes, long text and lists are cut."""
    if isinstance(value, Image):
        return {"image": f"{value.width}x{value.height}"}
    if isinstance(value, Video):
        return {"video": f"{value.width}x{value.height}", "frames": value.num_frames, "fps": value.fps,
                "seconds": round(value.seconds, 3)}
    if depth > 6:
        return type(value).__name__
    if isinstance(value, BaseModel):
        return describe(value.model_dump(mode="json"), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: describe(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [describe(v, depth + 1) for v in value[:MAX_ITEMS]]
        return items + [f"... {len(value) - MAX_ITEMS} more"] if len(value) > MAX_ITEMS else items
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"... ({len(value)} chars)"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, bool | int | float):
        return value
    return type(value).__name__


def _parent() -> Any:
    from langsmith.run_helpers import get_current_run_tree

    return get_current_run_tree()


def _method(parent: Any) -> str | None:
    """``metadata["method"]`` of the run's config (the runner's label: ``pass@8``), else the method
    the episode's state names (collabvr's own graph, also when embedded in a parent app's), else the
    name of the root graph run."""
    try:
        from langgraph.config import get_config

        config = get_config()
    except RuntimeError:  # not inside a graph
        return None
    if method := (config.get("metadata") or {}).get("method"):
        return str(method)
    state = getattr(parent, "inputs", None)
    if isinstance(state, dict) and isinstance(state.get("method"), str):
        return state["method"]
    handlers = getattr(config.get("callbacks"), "handlers", None) or []
    for handler in handlers:
        root = getattr(handler, "run_map", {}).get(str(getattr(parent, "trace_id", "")))
        if root is not None:
            return root.name
    return None


def _where(parent: Any, step: int | None, attempt: int | None) -> dict[str, Any]:
    """Method, task id, step and attempt of the node making the call (from its state)."""
    state = getattr(parent, "inputs", None) or {}
    task = state.get("task") if isinstance(state, dict) else None
    where = {"method": _method(parent),
             "task_id": task.get("id") if isinstance(task, dict) else task if isinstance(task, str) else None,
             "step": step if step is not None else state.get("step"),
             "attempt": attempt if attempt is not None else state.get("attempt"),
             "node": (getattr(parent, "metadata", None) or {}).get("langgraph_node")}
    return {k: v for k, v in where.items() if v is not None}


def _cost(spec: str, backend: Any, usage: dict[str, float]) -> float | None:
    provider, model = registry.parse_spec(spec)
    try:
        return estimated_cost(getattr(backend, "model", None) or model or provider, usage)
    except Exception:  # noqa: BLE001 - a price lookup never breaks a call
        return None


class _Run:
    """One model call's run; every method is a no-op when tracing is off."""

    def __init__(self, run: Any, spec: str, backend: Any) -> None:
        self.run, self.spec, self.backend = run, spec, backend

    def vlm_done(self, record: Any, fail: dict | None, compute: dict[str, Any]) -> None:
        if self.run is None:
            return
        usage = {"input_tokens": int(compute.get("input_tokens", 0)), "output_tokens": int(compute.get("output_tokens", 0))}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        cost = _cost(self.spec, self.backend, usage)
        meta: dict[str, Any] = {"ms": compute.get("vlm_ms"), "cache_hit": bool(compute.get("vlm_cache_hits"))}
        if cost is not None:
            meta["cost_usd"] = usage["total_cost"] = cost
        accept = getattr(record, "accept", None)
        if isinstance(accept, bool):
            meta["verdict"] = "accept" if accept else "reject"
            self.run.tags = [*self.run.tags, f"verdict:{meta['verdict']}"]
        answer = json.dumps(describe(record)) if record is not None else ""
        outputs = {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                   "record": describe(record) if record is not None else None, "usage_metadata": usage}
        self._end(outputs, fail, meta, usage)

    def vgm_done(self, video: Video | None, fail: dict | None, compute: dict[str, Any]) -> None:
        if self.run is None:
            return
        seconds = compute.get("clip_seconds", 0.0)
        meta: dict[str, Any] = {"ms": compute.get("vgm_ms"), "clip_seconds": seconds,
                                "cache_hit": bool(compute.get("vgm_cache_hits"))}
        if (cost := _cost(self.spec, self.backend, {"clip_seconds": seconds})) is not None:
            meta["cost_usd"] = cost
        self._end({"clip": describe(video) if video is not None else None}, fail, meta, None)

    def _end(self, outputs: dict[str, Any], fail: dict | None, meta: dict[str, Any], usage: dict | None) -> None:
        try:
            self.run.metadata.update(scrub(meta))
            if usage is not None:
                self.run.set(usage_metadata=usage)
            self.run.end(outputs=scrub(outputs), error=redact(f"{fail['kind']}: {fail['message']}") if fail else None)
        except Exception:  # noqa: BLE001 - tracing never breaks a run
            pass


@contextmanager
def model_run(ctx: Context, kind: str, role: str, inputs: dict[str, Any], *, backend: Any = None,
              step: int | None = None, attempt: int | None = None, **extra: Any) -> Iterator[_Run]:
    """A child run of the current node for one model call (``kind`` "vlm" or "vgm") to ``backend``
    (None: its spec did not resolve)."""
    spec = ctx.vlm if kind == "vlm" else ctx.vgm
    if not enabled():
        yield _Run(None, spec, None)
        return
    import langsmith

    provider, model = registry.parse_spec(spec)
    model = getattr(backend, "model", None) or model or provider
    parent = _parent()
    metadata = {**_where(parent, step, attempt), "role": role, "backend": spec, **extra}
    if kind == "vlm":
        metadata |= {"ls_provider": provider, "ls_model_name": model}
    tags = [f"collabvr:{kind}", f"role:{role}", f"backend:{spec}"]
    if metadata.get("method"):
        tags.append(f"method:{metadata['method']}")
    shown = describe(inputs)
    if kind == "vlm":  # chat-shaped, as LangSmith and its Playground read an llm run
        shown = {"messages": chat(role, inputs.get("request")), "model": model, **shown}
    with langsmith.trace(f"{kind}:{role}", run_type="llm" if kind == "vlm" else "tool",
                         inputs=scrub(shown), metadata=scrub(metadata), tags=tags) as run:
        yield _Run(run, spec, backend)


def chat(role: str, request: Any) -> list[dict[str, Any]]:
    """The role call as the one user turn every backend sends: the prompt, then each caption and a
    placeholder for each image or clip (their sizes, never their bytes)."""
    try:
        _, media = Roles().media_of(role, request)
        content = [{"type": "text", "text": prompt_for(request)}]
    except Exception:  # noqa: BLE001 - a request this describes no prompt for (a scripted test's)
        return [{"role": "user", "content": json.dumps(describe(request))}]
    for item in media:
        shown = item if isinstance(item, str) else json.dumps(describe(item))
        content.append({"type": "text", "text": shown})
    return [{"role": "user", "content": content}]


def annotate(**metadata: Any) -> None:
    """Add metadata (and ``key:value`` tags) to the current node's run, e.g. the repair strategy."""
    if not enabled():
        return
    run = _parent()
    if run is not None:
        run.metadata.update(scrub(metadata))
        run.tags = [*(run.tags or []), *(f"{k}:{v}" for k, v in metadata.items())]
