"""What a ``collabvr calibrate`` run with Gemini costs at list prices (docs/calibrate.md).

Runs the real command, ``collabvr calibrate --vlm gemini:MODEL``, through the real google-genai
SDK against the loopback Gemini fake (tests/fakes/google.py), whose answers are honest-looking
verdicts and plans. The fake bills each request as Gemini's documentation counts tokens: 258 per
image of at most 384 px a side (258 per 768 px tile above that), 258 per video frame at the
frame rate the backend asks for (``video_fps``, 4 by default; the sim clips have no audio), and
about 4 characters per text token; the answer's own characters for the output, without thinking
tokens (Gemini 2.5 bills those as output: the doc adds them apart). The command's report then
prices the counts with collabvr/prices.py. Run: ``python benchmarks/calibrate_cost.py [--n 60]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from typer.testing import CliRunner  # noqa: E402

from collabvr.cli import app  # noqa: E402
from collabvr.media import Image, Video, probe_fps  # noqa: E402
from tests.fakes import FakeGoogle, gemini_answer, gemini_options  # noqa: E402
from tests.fakes.brain import role_of  # noqa: E402

TOKENS_PER_FRAME = 258  # an image of <= 384 px a side, a 768 px tile, or one video frame
CHARS_PER_TOKEN = 4


def image_tokens(image: Image) -> int:
    h, w = image.array.shape[:2]
    if max(h, w) <= 384:
        return TOKENS_PER_FRAME
    return TOKENS_PER_FRAME * math.ceil(h / 768) * math.ceil(w / 768)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60, help="labelled clips (the command's default)")
    parser.add_argument("--model", default="gemini-2.5-pro")
    parser.add_argument("--video-fps", type=float, default=4.0, help="the Gemini backend's video_fps option")
    args = parser.parse_args()
    with FakeGoogle() as fake:
        def handler(request):
            text, media = fake.decode(request)
            prompt = math.ceil(len(json.dumps(request.json["contents"][0]["parts"][0].get("text", ""))) / CHARS_PER_TOKEN)
            for item in media:
                if isinstance(item, Video):
                    prompt += round(item.num_frames / probe_fps(item.mp4) * args.video_fps) * TOKENS_PER_FRAME
                else:
                    prompt += image_tokens(item)
            answer = fake.brain.answer(role_of(text), text, media)
            return gemini_answer(answer, prompt_tokens=prompt, output_tokens=math.ceil(len(json.dumps(answer)) / CHARS_PER_TOKEN))

        fake.defaults["generateContent"] = handler
        options = [f"--vlm-option={k}={v}" for k, v in gemini_options(fake, video_fps=args.video_fps).items()]
        with tempfile.TemporaryDirectory() as out:
            result = CliRunner().invoke(app, ["calibrate", "--vlm", f"gemini:{args.model}", "--n", str(args.n),
                                              "--out", out, *options])
            if result.exit_code != 0:
                sys.exit(result.output)
            report = json.loads((Path(out) / "calibration.json").read_text())
    compute = report["compute"]
    clips = report["clips"]
    print(json.dumps({"model": args.model, "clips": clips, "plan_frames": report["plan"]["frames"], **compute,
                      "per_clip": {"calls": compute["vlm_calls"] / clips, "input_tokens": compute["input_tokens"] / clips,
                                   "output_tokens": compute["output_tokens"] / clips},
                      "typed_failures": report["typed_failures"]}, indent=2))


if __name__ == "__main__":
    main()
