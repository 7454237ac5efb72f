"""Async all the way: nodes awaited under ainvoke, the SDKs' async clients, asyncio.sleep for waits, and a
worker thread for what stays synchronous; sync invoke keeps working on the same nodes."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from collabvr.aio import either, offload, run_inline
from collabvr.backends import base
from collabvr.backends.google import make_gemini, make_veo
from collabvr.backends.openai import make as make_openai
from collabvr.bench import limits
from collabvr.context import Context
from collabvr.graph import compiled
from collabvr.media import Image
from collabvr.records import Plan, PlanRequest, Verdict, VerifyRequest
from tests.fakes import (
    FakeGoogle,
    FakeOpenAI,
    Op,
    colour_clip,
    gemini_options,
    header,
    openai_options,
    veo_options,
)

FRAME = Image(np.full((32, 48, 3), 90, np.uint8))
GENERATION_S = 2.0


def test_sixteen_episodes_wait_for_their_generations_together_on_two_threads(tmp_path):
    """Each episode's one generation takes 2 s (the sim's latency knob); the loop's default executor has
    2 threads, so sync nodes would hold one each and run 2 at a time: 8 generations' time. Awaited, the
    16 waits overlap: about one generation's time."""
    graph = compiled("single")
    contexts = [Context(out_dir=str(tmp_path / f"e{i}"), seed=i, max_steps=1, first_clip_seconds=1.0, fps=8,
                        vgm_options={"latency_s": GENERATION_S}) for i in range(16)]

    async def main() -> tuple[list[dict], float]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
        started = time.perf_counter()
        outs = await asyncio.gather(*(graph.ainvoke({"task": "sim:maze/easy"}, context=c) for c in contexts))
        return outs, time.perf_counter() - started

    outs, wall = asyncio.run(main())
    assert [o["status"] for o in outs] == ["generated"] * 16 and all(o["compute"]["vgm_calls"] == 1 for o in outs)
    assert GENERATION_S <= wall < 3 * GENERATION_S, f"16 episodes took {wall:.1f} s"  # not 8 x 2 s


def test_sync_invoke_runs_the_same_async_nodes_in_its_own_thread(tmp_path):
    threads: set[int] = set()
    original = base.vgm_call

    def spy(*args, **kwargs):
        threads.add(threading.get_ident())
        return original(*args, **kwargs)

    base.vgm_call = spy
    try:
        out = compiled("collabvr").invoke({"task": "sim:maze/easy"}, context=Context(out_dir=str(tmp_path)))
    finally:
        base.vgm_call = original
    assert out["status"] == "complete" and threads  # ran inline on LangGraph's threads, no event loop


def test_run_inline_takes_the_sync_form_and_refuses_a_real_suspension():
    async def body() -> int:
        a = await offload(lambda: 2)
        b = await either(lambda: 3, lambda: asyncio.sleep(10, result=99))
        return a * b

    assert run_inline(body()) == 6
    assert asyncio.run(body()) == 2 * 99  # under a loop: the native form

    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other"):
        run_inline(suspends())


async def _heartbeat(coro, gaps: list[float] | None = None):
    """Await ``coro`` while a heartbeat ticks; (its result, ticks): a blocked loop does not tick.
    ``gaps`` receives the time between ticks."""
    ticks = 0

    async def beat() -> None:
        nonlocal ticks
        last = time.perf_counter()
        while True:
            ticks += 1
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            if gaps is not None:
                gaps.append(now - last)
            last = now

    task = asyncio.create_task(beat())
    try:
        result = await coro
    finally:
        task.cancel()
    return result, ticks


def _heartbeat_during(coro):
    return asyncio.run(_heartbeat(coro))


def _slowly(answer, seconds: float = 0.3):
    """A fake-server handler that answers as ``answer`` does, ``seconds`` later."""

    def handler(request):
        time.sleep(seconds)
        return answer(request)

    return handler


def test_gemini_acall_sends_the_same_request_on_the_async_client():
    with FakeGoogle() as google:
        vlm = make_gemini("vlm", "gemini-2.5-pro", gemini_options(google, temperature=0.3))
        request = VerifyRequest(task="t", clip=colour_clip((0, 200, 0)), start_frame=FRAME, instruction="i", target_state="s")
        google.script("generateContent", _slowly(google._generate_content))

        async def main() -> tuple[Verdict, int, int]:
            verdict, ticks = await _heartbeat(vlm.acall("verify", request))
            return verdict, ticks, len(vlm._aio._clients)

        verdict, ticks, clients = asyncio.run(main())
        sync = vlm.verify(request)
        sent_async, sent_sync = google.calls("generateContent")
    assert ticks >= 10  # the loop ran while the server took 0.3 s: the request was awaited, not blocking
    assert clients == 1  # sent on that loop's client.aio
    assert isinstance(verdict, Verdict) and verdict.accept == sync.accept
    assert sent_async.json == sent_sync.json  # what the server received is the same on both clients
    blobs = [p["inlineData"] for p in sent_async.json["contents"][0]["parts"] if "inlineData" in p]
    assert [b.get("mimeType") or b.get("mime_type") for b in blobs] == ["image/png", "video/mp4"]


def test_openai_acall_sends_on_async_openai():
    with FakeOpenAI() as server:
        vlm = make_openai("vlm", "gpt-4.1", openai_options(server, frames_per_clip=3))
        request = PlanRequest(task="reach the goal", frame=FRAME, step=1, max_steps=3, seconds=3.0)
        server.script("chat", _slowly(server._chat))
        plan, ticks = _heartbeat_during(vlm.acall("plan", request))
        vlm.plan(request)
        sent_async, sent_sync = server.calls("chat")
    assert isinstance(plan, Plan) and ticks >= 10
    assert sent_async.json == sent_sync.json
    assert header(sent_async, "X-Stainless-Async").startswith("async") and header(sent_sync, "X-Stainless-Async") == "false"


def test_veo_agenerate_polls_with_asyncio_sleep_and_never_blocks_the_loop():
    gaps: list[float] = []
    with FakeGoogle() as google:
        google.plan_ops(Op(polls=3))
        veo = make_veo("vgm", "veo-3.1-generate-001", veo_options(google, poll_s=0.3))
        clip, _ = asyncio.run(_heartbeat(veo.agenerate(FRAME, "move up", seconds=3.0, fps=16, seed=7), gaps))
        polls = len(google.calls("fetchPredictOperation"))
    assert clip.num_frames == 8 and polls == 4
    assert max(gaps) < 0.2, max(gaps)  # 3 waits of 0.3 s awaited: the loop never stopped (a time.sleep would freeze it)


class _AsyncVGM:
    """A VGM with only an async form, counting how many of its calls are in flight at once."""

    def __init__(self) -> None:
        self.now = self.most = 0

    async def agenerate(self, frame, prompt, *, seconds, fps, seed):
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.05)
        self.now -= 1
        return colour_clip((0, 0, 200))


def test_the_bench_limit_holds_async_calls_too():
    hold, _ = limits.threads(2)
    inner = _AsyncVGM()
    limited = base.Around(inner, hold("vgm", "fake:x"))

    async def main() -> None:
        await asyncio.gather(*(base.vgm_call(limited, FRAME, "p", seconds=1, fps=8, seed=i) for i in range(8)))

    asyncio.run(main())
    assert inner.most == 2  # the semaphore of 2 held around each awaited call


def test_a_backend_serves_one_event_loop_after_another():
    """Backends are built once per process; each event loop (asyncio.run twice, a server's isolated
    loops) gets its own async client, whose connections belong to that loop."""
    with FakeOpenAI() as server, FakeGoogle() as google:
        vlm = make_openai("vlm", "gpt-4.1", openai_options(server))
        gemini = make_gemini("vlm", "gemini-2.5-pro", gemini_options(google))
        request = PlanRequest(task="reach the goal", frame=FRAME, step=1, max_steps=3, seconds=3.0)
        for _ in range(3):
            assert isinstance(asyncio.run(vlm.acall("plan", request)), Plan)
            assert isinstance(asyncio.run(gemini.acall("plan", request)), Plan)
        assert len(server.calls("chat")) == 3 and len(google.calls("generateContent")) == 3
