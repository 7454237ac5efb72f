"""Peak resident memory of one ``collabvr bench`` process, beside the size of the clips it handles.

Each case runs the real CLI in a fresh subprocess and reads that child's peak resident set size
(``ru_maxrss`` from ``os.wait4``), so nothing this script allocates is counted:

* ``sim``: ``sim:maze/medium``, CollabVR, the default sim backends (128 px frames);
* ``vbvr``: the ``still`` floor (``--methods single --vgm still``) on a synthetic VBVR-Bench suite
  of five samples at 1024x1024, one 12-s clip at 16 fps per episode (192 frames, 576 MiB of RGB);
* ``veo``: CollabVR with ``veo:`` and ``gemini:`` against the loopback fakes of tests/fakes, whose
  Veo returns a 720p 8-s clip at 24 fps (192 frames, 506 MiB of RGB) on the same suite.

Each VBVR and Veo case runs at every ``--concurrency`` and also on a copy of its suite at 64 px (the
fake Veo then returns a 64 px clip): that run's peak is the process's *baseline*, everything but the
clips (the sim's clips are small enough that its peak is its baseline). Printed per case: the decoded size of one clip, the baseline, the peak (median of
``--repeats`` runs, each run listed), and ``(peak - baseline) / (concurrency x clip)``, the clip
copies per episode in flight. The goal (issue 23) is at most 2.

    python benchmarks/memory.py                                   # every case at concurrency 1 and 4
    python benchmarks/memory.py --cases vbvr --concurrency 4 --repeats 5
    python benchmarks/memory.py --root /path/to/another/checkout  # measure that checkout's code

``--root`` runs another checkout's ``collabvr`` (e.g. an older commit, for a before/after on the same
machine); this script and its fakes stay the ones here.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image as PILImage

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from tests.fakes import Brain, FakeGoogle  # noqa: E402

TASK = "O-47_sliding_puzzle_data-generator"
SAMPLES = 5
BASELINE_SIZE = 64
MiB = 2**20


# -- media written straight with PyAV, so the fixtures do not depend on the code under test ---------
def write_mp4(path: Path | None, frames: Iterator[np.ndarray], fps: int, width: int, height: int) -> bytes:
    """Encode frames one at a time (nothing held) as H.264; write to ``path`` if given."""
    target = str(path) if path is not None else None
    buf = io.BytesIO()
    with av.open(target or buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    return path.read_bytes() if path is not None else buf.getvalue()


def tiles(size: int, moved: int, rng_seed: int) -> np.ndarray:
    """A 4x4 sliding-puzzle board: coloured tiles on grey, the first ``moved`` tiles shifted one place."""
    rng = np.random.default_rng(rng_seed)
    colours = rng.integers(40, 230, (16, 3), dtype=np.uint8)
    board = np.full((size, size, 3), 128, np.uint8)
    cell = size // 4
    for i in range(15):
        row, col = divmod(i, 4)
        if i < moved:
            col = (col + 1) % 4
        board[row * cell + 2:(row + 1) * cell - 2, col * cell + 2:(col + 1) * cell - 2] = colours[i]
    return board


def write_suite(root: Path, size: int) -> Path:
    """Five samples of one task in the VBVR-Bench layout (first/final frame, ground truth, prompt, index)."""
    entries = []
    for s in range(SAMPLES):
        rel = Path("In-Domain_50") / TASK / f"{s:05d}"
        folder = root / rel
        folder.mkdir(parents=True, exist_ok=True)
        first, final = tiles(size, 0, s), tiles(size, 3, s)
        PILImage.fromarray(first).save(folder / "first_frame.png")
        PILImage.fromarray(final).save(folder / "final_frame.png")
        truth = (first if t < 24 else final for t in range(48))  # 3 s at 16 fps: the move, then the result
        write_mp4(folder / "ground_truth.mp4", truth, 16, size, size)
        (folder / "prompt.txt").write_text("Slide the tiles into place.\n")
        entries.append({"id": f"{TASK}_{s:05d}", "prompt": "Slide the tiles into place.",
                        "first_image": base64.b64encode((folder / "first_frame.png").read_bytes()).decode(),
                        "first_frame_path": str(rel / "first_frame.png"), "final_frame_path": str(rel / "final_frame.png"),
                        "prompt_path": str(rel / "prompt.txt"), "ground_truth_video_path": str(rel / "ground_truth.mp4")})
    (root / "VBVR-Bench.json").write_text(json.dumps(entries))
    return root


def veo_clip(width: int, height: int, seconds: int, fps: int) -> bytes:
    """What the fake Veo returns: a gradient with a square moving across it."""
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 // max(1, width - 1), ys * 255 // max(1, height - 1), np.full_like(xs, 96)], -1).astype(np.uint8)
    side = max(2, height // 6)

    def frames() -> Iterator[np.ndarray]:
        for t in range(seconds * fps):
            frame = base.copy()
            x = (width - side) * t // max(1, seconds * fps - 1)
            frame[height // 3:height // 3 + side, x:x + side] = (240, 40, 40)
            yield frame

    return write_mp4(None, frames(), fps, width, height)


# -- one measured run -------------------------------------------------------------------------------
def peak_rss(argv: list[str], env: dict[str, str], log: Path) -> int:
    """Run ``argv`` to the end; its peak resident set size in bytes (Linux reports KiB). It runs in
    the log's folder: ``python -m`` puts the working directory first on the path, before PYTHONPATH."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=log.parent)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} exited {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}")
    return usage.ru_maxrss * 1024


class Case:
    """A bench command for one case, at full size and at the baseline size."""

    def __init__(self, name: str, clip_bytes: Callable[[bool], int], argv: Callable[[Path, bool, int], list[str]]) -> None:
        self.name, self.clip_bytes, self.argv = name, clip_bytes, argv


def cases(args: argparse.Namespace, work: Path, google: FakeGoogle, small_google: FakeGoogle) -> dict[str, Case]:
    suites = {False: write_suite(work / "suite", args.vbvr_size), True: write_suite(work / "suite-small", BASELINE_SIZE)}
    frames = args.clip_seconds * 16
    veo_w, veo_h = args.veo_size

    def common(out: Path, concurrency: int) -> list[str]:
        return ["--out", str(out), "--concurrency", str(concurrency), "--quiet", "--yes", "--no-cache"]

    def gemini(server: FakeGoogle) -> list[str]:
        return ["--vlm", "gemini:gemini-2.5-pro", "--vlm-option", "api_key=fake-key-000", "--vlm-option",
                f"base_url={server.url}"]

    def vbvr(out: Path, small: bool, c: int) -> list[str]:
        server = small_google if small else google
        return ["bench", "--suite", f"vbvr:{suites[small]}", "--methods", "single", "--vgm", "still", *gemini(server),
                "--n", str(args.samples), "--first-seconds", str(args.clip_seconds), "--max-steps", "1", *common(out, c)]

    def veo(out: Path, small: bool, c: int) -> list[str]:
        server = small_google if small else google
        return ["bench", "--suite", f"vbvr:{suites[small]}", "--methods", "collabvr", "--vgm", "veo:veo-3.0-generate-001",
                "--vgm-option", "api_key=fake-key-000", "--vgm-option", f"base_url={server.url}", "--vgm-option", "poll_s=0.01",
                *gemini(server), "--n", str(args.samples), "--first-seconds", str(args.veo_seconds), "--max-steps", "1",
                *common(out, c)]

    def sim(out: Path, small: bool, c: int) -> list[str]:
        return ["bench", "--suite", "sim:maze/medium", "--methods", "collabvr", "--n", str(args.samples), "--size", "128",
                *common(out, c)]

    return {
        "sim": Case("sim", lambda small: 6 * 16 * 128 * 128 * 3, sim),  # a 6-s first clip at 16 fps
        "vbvr": Case("vbvr", lambda small: frames * (BASELINE_SIZE if small else args.vbvr_size) ** 2 * 3, vbvr),
        "veo": Case("veo", lambda small: args.veo_seconds * 24 * (BASELINE_SIZE ** 2 if small else veo_w * veo_h) * 3, veo),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="sim,vbvr,veo", help="comma-separated: sim, vbvr, veo")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated concurrencies")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case and concurrency (median reported)")
    parser.add_argument("--samples", type=int, default=SAMPLES, choices=range(1, SAMPLES + 1), metavar="1-5",
                        help="episodes per run (the suite's first N samples)")
    parser.add_argument("--vbvr-size", type=int, default=1024, help="the VBVR suite's frame side")
    parser.add_argument("--clip-seconds", type=int, default=12, help="the still floor's clip length")
    parser.add_argument("--veo-size", type=lambda s: tuple(int(x) for x in s.split("x")), default=(1280, 720),
                        help="the fake Veo's clip, WIDTHxHEIGHT")
    parser.add_argument("--veo-seconds", type=int, default=8)
    parser.add_argument("--root", type=Path, default=HERE, help="the collabvr checkout to measure")
    parser.add_argument("--out", type=Path, default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args(argv)
    print("$", shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["memory.py", *argv]), flush=True)
    head = subprocess.run(["git", "-C", str(args.root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"code: {args.root} at {head.stdout.strip() or '?'}; {os.cpu_count()} CPUs", flush=True)

    work = args.out or Path(tempfile.mkdtemp(prefix="collabvr-memory-"))
    env = {**os.environ, "PYTHONPATH": str(args.root)}
    never_red = Brain(verdict=lambda media: True)  # the fake verifier accepts without decoding the clip
    with FakeGoogle(never_red) as google, FakeGoogle(never_red) as small_google:
        google.clip_bytes = veo_clip(*args.veo_size, args.veo_seconds, 24)
        small_google.clip_bytes = veo_clip(BASELINE_SIZE, BASELINE_SIZE, args.veo_seconds, 24)
        for server in (google, small_google):
            _serve_bytes(server)
        table = cases(args, work, google, small_google)
        print(f"\n{'case':<6} {'conc':>4} {'clip MiB':>8} {'base MiB':>8} {'peak MiB':>8}  {'copies/ep':>9}  runs (peak MiB)")
        for name in [c.strip() for c in args.cases.split(",") if c.strip()]:
            case = table[name]
            for c in [int(x) for x in args.concurrency.split(",")]:
                peaks, bases = [], []
                modes = ((False, peaks), (True, bases)) if name != "sim" else ((False, peaks),)  # the sim has no small copy
                for r in range(args.repeats):
                    for small, into in modes:
                        out = work / f"{name}-c{c}-r{r}-{'base' if small else 'full'}"
                        argv_ = [sys.executable, "-m", "collabvr.cli", *case.argv(out, small, c)]
                        into.append(peak_rss(argv_, env, work / f"{out.name}.log"))
                peak, clip = statistics.median(peaks), case.clip_bytes(False)
                base = f"{statistics.median(bases) / MiB:.0f}" if bases else "-"
                copies = f"{(peak - statistics.median(bases)) / (c * clip):.2f}" if bases else "-"
                runs = ", ".join(f"{p / MiB:.0f}" for p in peaks)
                print(f"{name:<6} {c:>4} {clip / MiB:>8.1f} {base:>8} {peak / MiB:>8.0f}  {copies:>9}  {runs}", flush=True)


def _serve_bytes(server: FakeGoogle) -> None:
    """Make the fake Veo answer with ``server.clip_bytes`` (its default clip is a small Video)."""

    class Clip:
        mp4 = server.clip_bytes

    server.clip = Clip()  # type: ignore[assignment]


if __name__ == "__main__":
    main()
