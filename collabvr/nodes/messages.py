"""The episode as chat messages: each plan, verdict, repair and the final result is a short ``AIMessage``.

They go to the state's ``messages`` channel (``add_messages``), so ``stream_mode="messages"``, LangGraph
Studio's chat view and any chat UI show the episode as it runs. The text is a line a person reads;
the artifacts a message is about are named by the URL of the Agent Server's route
(``/artifacts/<sha256>.<ext>``, fetched from the server the client talks to), and listed again
under ``additional_kwargs["artifacts"]`` for programs.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage

from collabvr.artifacts import public_url

NAME = "collabvr"


def say(text: str, **artifacts: dict[str, Any] | None) -> dict[str, list[AIMessage]]:
    """``{"messages": [one AIMessage]}``: ``text`` with a line per artifact URL."""
    urls = {name: url for name, ref in artifacts.items() if (url := public_url(ref))}
    lines = [text, *(f"{name.replace('_', ' ')}: {url}" for name, url in urls.items())]
    return {"messages": [AIMessage(content="\n".join(lines), name=NAME, additional_kwargs={"artifacts": urls})]}


def planned(step: int, plan: dict[str, Any], frame: dict | None = None) -> dict[str, list[AIMessage]]:
    done = " (finishes the task)" if plan.get("task_complete") else ""
    target = f"\ntarget: {plan['target_state']}" if plan.get("target_state") else ""
    return say(f"Step {step + 1} plan: {plan['instruction'] or '(nothing left to do)'}{done}{target}", frame=frame)


def verified(attempt: dict[str, Any]) -> dict[str, list[AIMessage]]:
    verdict, error = attempt.get("verdict") or {}, attempt.get("error") or {}
    why = verdict.get("reason") or error.get("message", "")
    head = f"Step {attempt.get('step', 0) + 1}, attempt {attempt.get('index', 0) + 1}: {attempt['status']}"
    return say(f"{head}: {why}" if why else head, clip=attempt.get("clip"))


def repaired(record: dict[str, Any]) -> dict[str, list[AIMessage]]:
    return say(f"Repair ({record['strategy'].replace('_', ' ')}): {record['prompt']}")


def selected(round_: int, text: str, chosen: dict | None) -> dict[str, list[AIMessage]]:
    return say(f"Round {round_ + 1}: {text}", video=chosen)


def critiqued(round_: int, text: str) -> dict[str, list[AIMessage]]:
    return say(f"Round {round_ + 1} critique: {text}")


def finished(status: str, reason: str, final: dict | None, score: dict | None) -> dict[str, list[AIMessage]]:
    scored = f" (score {score['score']:.2f})" if score and score.get("score") is not None else ""
    return say(f"{status}{scored}: {reason}", final_video=final)
