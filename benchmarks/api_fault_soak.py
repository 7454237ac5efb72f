"""Fault soak: 100 CollabVR episodes against the loopback API fakes, each fault injected at 20%.

Half the episodes run ``gemini:`` + ``veo:``, half ``openai:`` + ``veo:``, on a user image, in a
thread pool (the backends, and so their retry policy and concurrency limits, are shared). Every
API request draws one fault with probability 0.2: 429 with Retry-After, 503, a timeout, and per
endpoint malformed JSON or a schema-violating answer (VLM; both claim "accept") or a
safety-filtered video or an operation that never finishes (Veo). 30% of the clips the fake Veo
makes are red, and the honest fake verifier rejects red clips.

An *error-accept* is an accepted attempt whose verdict came from a faulted response or judged a
red clip: each verdict names the response it came from, and the fake logs faults per request.
Bars: 0 crashes, 0 error-accepts. Run: ``python benchmarks/api_fault_soak.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collabvr.media import Image  # noqa: E402
from collabvr.runner import run  # noqa: E402
from collabvr.task import Task  # noqa: E402
from tests.fakes import (  # noqa: E402
    Brain,
    FakeGoogle,
    FakeOpenAI,
    Op,
    chat_answer,
    colour_clip,
    error,
    gemini_answer,
    hang,
    is_red,
    role_of,
)

EPISODES, WORKERS, FAULT_RATE, RED_RATE, LATENCY = 100, 16, 0.2, 0.3, 0.01
VLM_FAULTS = ["429", "503", "timeout", "malformed", "schema"]
SUBMIT_FAULTS = ["429", "503", "timeout", "filtered", "never"]
POLL_FAULTS = ["429", "503", "timeout"]
CALL = {"max_retries": 3, "backoff_s": 0.02, "backoff_max_s": 0.1, "timeout_s": 0.25, "concurrency": WORKERS}
VLM_CALL = {**CALL, "deadline_s": 3.0}
VEO_CALL = {**CALL, "deadline_s": 1.0, "poll_s": 0.02}
GREEN, RED = colour_clip((0, 200, 0)).mp4, colour_clip((200, 0, 0)).mp4


class Injector:
    """Draws faults per request and remembers, per response id, whether a verdict is trustworthy."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        self.rate, self.rng, self.lock = rate, random.Random(seed), threading.Lock()
        self.verdicts: dict[str, dict] = {}  # response id -> {"fault", "red"}
        self.ids = iter(range(10**9))

    def draw(self, kinds: list[str]) -> str | None:
        with self.lock:
            return self.rng.choice(kinds) if self.rng.random() < self.rate else None

    def red(self) -> bool:
        with self.lock:
            return self.rng.random() < RED_RATE

    def vlm(self, text: str, media: list, reply_with) -> object:
        time.sleep(LATENCY)
        role = role_of(text)
        fault = self.draw(VLM_FAULTS)
        with self.lock:
            rid = f"r{next(self.ids)}"
        self.verdicts[rid] = {"fault": fault, "red": is_red(media), "role": role}
        if fault in ("429", "503", "timeout"):
            return {"429": error(429, retry_after=0.05), "503": error(503), "timeout": hang(0.4)}[fault]
        if fault == "malformed":
            return reply_with('{"accept": true, "reason": "[' + rid + ']", "good_fraction": 1', fault)
        if fault == "schema":
            return reply_with({"accept": True, "reason": f"[{rid}]", "good_fraction": 7.0}, fault)
        answer = Brain(steps=2).answer(role, text, media)
        if role == "verify":
            answer["reason"] += f" [{rid}]"
        return reply_with(answer, None)


def start_fakes(injector: Injector) -> tuple[FakeGoogle, FakeOpenAI]:
    google, openai = FakeGoogle().start(), FakeOpenAI().start()

    def gemini(request):
        text, media = google.decode(request)
        return injector.vlm(text, media, lambda a, f: gemini_answer(a, fault=f))

    def chat(request):
        text, media = openai.decode(request)
        return injector.vlm(text, media, lambda a, f: chat_answer(a, fault=f))

    submit_lock = threading.Lock()
    submit_default, poll_default = google.defaults["predictLongRunning"], google.defaults["fetchPredictOperation"]

    def submit(request):
        time.sleep(LATENCY)
        fault = injector.draw(SUBMIT_FAULTS)
        if fault in ("429", "503", "timeout"):
            return {"429": error(429, retry_after=0.05), "503": error(503), "timeout": hang(0.4)}[fault]
        op = Op(polls=-1 if fault == "never" else 1, video=RED if injector.red() else GREEN, fault=fault,
                filtered=["injected safety filter"] if fault == "filtered" else None)
        with submit_lock:  # so this request gets this op
            google.plan_ops(op)
            return submit_default(request)

    def poll(request):
        time.sleep(LATENCY)
        fault = injector.draw(POLL_FAULTS)
        if fault is not None:
            return {"429": error(429, retry_after=0.05), "503": error(503), "timeout": hang(0.4)}[fault]
        return poll_default(request)

    google.defaults.update(generateContent=gemini, predictLongRunning=submit, fetchPredictOperation=poll)
    openai.defaults["chat"] = chat
    return google, openai


def accepted_verdicts(trace: object) -> list[dict]:
    """Every verdict of an accepted attempt, wherever the trace keeps attempts."""
    found: list[dict] = []
    if isinstance(trace, dict):
        if trace.get("status") == "accepted" and isinstance(trace.get("verdict"), dict):
            found.append(trace["verdict"])
        for value in trace.values():
            found += accepted_verdicts(value)
    elif isinstance(trace, list):
        for value in trace:
            found += accepted_verdicts(value)
    return found


def failed_kinds(trace: object) -> Counter:
    kinds: Counter = Counter()
    if isinstance(trace, dict):
        if isinstance(trace.get("error"), dict) and str(trace.get("status", "")).endswith("failed"):
            kinds[f"{trace['status']}:{trace['error'].get('kind')}"] += 1
        for value in trace.values():
            kinds += failed_kinds(value)
    elif isinstance(trace, list):
        for value in trace:
            kinds += failed_kinds(value)
    return kinds


def soak(rate: float, episodes: int, root: Path) -> dict:
    injector = Injector(rate)
    google, openai = start_fakes(injector)
    image = root / "first.png"
    image.write_bytes(Image(np.full((32, 32, 3), 128, np.uint8)).to_png())
    veo = {"api_key": "soak-google-key", "base_url": google.url, **VEO_CALL}
    specs = [
        ("gemini:gemini-2.5-pro", {"api_key": "soak-google-key", "base_url": google.url, **VLM_CALL}),
        ("openai:gpt-4.1", {"api_key": "soak-openai-key", "base_url": openai.url + "/v1", **VLM_CALL}),
    ]

    def episode(i: int) -> dict:
        vlm, vlm_options = specs[i % 2]
        out = root / f"rate{rate}" / f"ep{i:03d}"
        try:
            result = run(Task.from_image(image, "make the square green"), vlm=vlm, vgm="veo:veo-3.1-generate-001",
                         vlm_options=vlm_options, vgm_options=veo, max_steps=3, max_attempts=3, out_dir=str(out))
        except Exception as exc:  # noqa: BLE001 - a crash is what this benchmark counts
            return {"crash": f"{type(exc).__name__}: {exc}"}
        trace = json.loads((out / "trace.json").read_text())
        return {"status": result.status, "accepted": accepted_verdicts(trace), "failed": failed_kinds(trace)}

    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(episode, range(episodes)))
    wall = time.perf_counter() - start
    requests = len(google.requests) + len(openai.requests)
    faults = Counter(r.fault for r in [*google.requests, *openai.requests] if r.fault)
    google.stop()
    openai.stop()

    error_accepts = 0
    for r in results:
        for verdict in r.get("accepted", []):
            rid = verdict["reason"].rsplit("[", 1)[-1].rstrip("]")
            origin = injector.verdicts.get(rid, {"fault": "unknown"})
            error_accepts += bool(origin["fault"] or origin["red"])
    failed = sum((r.get("failed", Counter()) for r in results), Counter())
    return {
        "episodes": episodes, "wall_s": wall, "requests": requests, "faults": faults,
        "crashes": [r["crash"] for r in results if "crash" in r],
        "error_accepts": error_accepts, "accepts": sum(len(r.get("accepted", [])) for r in results),
        "typed_failures": failed, "completed": sum(r.get("status") == "complete" for r in results),
        "statuses": Counter(r.get("status", "crash") for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=EPISODES, help="episodes of the faulted soak")
    episodes = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        clean = soak(0.0, 4, Path(tmp))  # fault-free: requests per episode
        report = soak(FAULT_RATE, episodes, Path(tmp))
    per_episode = clean["requests"] / clean["episodes"]
    ideal = per_episode * LATENCY * -(-episodes // WORKERS)
    print(f"episodes: {report['episodes']} (gemini+veo and openai+veo alternating, {WORKERS} threads)")
    print(f"requests: {report['requests']}  faults injected: {sum(report['faults'].values())} {dict(report['faults'])}")
    print(f"crashes: {len(report['crashes'])}  {report['crashes'][:3]}")
    print(f"error-accepts: {report['error_accepts']}  (of {report['accepts']} accepted attempts)")
    print(f"typed failures: {sum(report['typed_failures'].values())} {dict(report['typed_failures'])}")
    print(f"completed episodes: {report['completed']}/{report['episodes']}  statuses: {dict(report['statuses'])}")
    print(f"wall: {report['wall_s']:.1f} s; latency-bound ideal: {ideal:.1f} s "
          f"({per_episode:.1f} fault-free requests/episode x {LATENCY * 1000:.0f} ms x {-(-episodes // WORKERS)} waves); "
          f"fault-free run: {clean['wall_s']:.1f} s for {clean['episodes']} episodes")
    ok = not report["crashes"] and report["error_accepts"] == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
