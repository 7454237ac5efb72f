"""collabvr: collaborative video reasoning.

A vision-language model plans the immediate next action from the current frame, a video
generation model renders a short clip for it, and the VLM verifies that clip and folds its
diagnosis into the next attempt, as a LangGraph state machine.
"""

__version__ = "0.1.0"

from collabvr.artifacts import ArtifactRef, ArtifactStore  # noqa: E402
from collabvr.context import Context  # noqa: E402
from collabvr.errors import BackendError, BadInput  # noqa: E402
from collabvr.records import Judgement, Plan, Selection, Verdict  # noqa: E402
from collabvr.state import State  # noqa: E402
from collabvr.task import Task  # noqa: E402


def build_collabvr():  # noqa: ANN201 - re-exported lazily to keep `import collabvr` light
    """The uncompiled CollabVR StateGraph builder."""
    from collabvr.graph.collabvr import build_collabvr as build

    return build()


def run(task, **kwargs):  # noqa: ANN001, ANN201
    """Run one episode; see :func:`collabvr.runner.run`."""
    from collabvr.runner import run as _run

    return _run(task, **kwargs)


def __getattr__(name: str):  # noqa: ANN202 - module attribute hook
    """``collabvr.graph`` (and so ``collabvr.graph.collabvr.graph``) without importing LangGraph on
    ``import collabvr``."""
    if name in ("graph", "runner", "events", "status"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "BackendError",
    "BadInput",
    "Context",
    "Judgement",
    "Plan",
    "Selection",
    "State",
    "Task",
    "Verdict",
    "build_collabvr",
    "run",
    "__version__",
]
