#!/usr/bin/env python3
"""Stand-in for VBVR-EvalKit's run_evaluation.py (see README.md): its command line, the videos it
collects, and its <model>_vbvr_results.json; the score is the stand-in's toy task score."""

import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from vbvr_bench import TASK_EVALUATOR_MAP, evaluate_video, get_task_category  # noqa: E402

FOLDER_TO_SPLIT = {"In-Domain_50": "In_Domain", "Out-of-Domain_50": "Out_of_Domain"}


def collect_videos(model_path):
    videos = []
    for folder in FOLDER_TO_SPLIT:
        folder_path = os.path.join(model_path, folder)
        if not os.path.exists(folder_path):
            print(f"Warning: {folder_path} does not exist")
            continue
        for task_name in sorted(os.listdir(folder_path)):
            if not os.path.isdir(os.path.join(folder_path, task_name)):
                continue
            if task_name not in TASK_EVALUATOR_MAP:
                print(f"Warning: No evaluator for task {task_name}")
                continue
            for video_file in sorted(os.listdir(os.path.join(folder_path, task_name))):
                if re.fullmatch(r"\d{5}\.mp4", video_file):
                    videos.append({"video_path": os.path.join(folder_path, task_name, video_file), "task_name": task_name,
                                   "video_file": video_file, "video_idx": int(video_file[:5]), "split": FOLDER_TO_SPLIT[folder],
                                   "category": get_task_category(task_name), "folder": folder})
    return videos


def evaluate_model(model_name, model_path, gt_base, output_dir):
    videos = collect_videos(model_path)
    if not videos:
        print(f"No videos found in {model_path}")
        return None
    results = {"model_name": model_name, "model_path": model_path, "samples": [],
               "summary": {k: {"scores": [], "by_task": {}, "by_category": {}} for k in ("In_Domain", "Out_of_Domain", "overall")}}
    for i, v in enumerate(videos):
        sample = os.path.join(gt_base, v["folder"], v["task_name"], f"{v['video_idx']:05d}")
        try:
            score, dims, received = evaluate_video(v["video_path"], os.path.join(sample, "first_frame.png"),
                                                   os.path.join(sample, "final_frame.png"), weighted=False)
            error = None
        except Exception as exc:  # the kit scores a failing video 0 and goes on
            score, dims, received, error = 0.0, {}, {}, str(exc)
        print(f"Evaluating {model_name}: {i + 1}/{len(videos)}", end="\r", flush=True)
        results["samples"].append({"video_path": v["video_path"], "video_file": v["video_file"], "task_name": v["task_name"],
                                   "split": v["split"], "category": v["category"], "folder": v["folder"], "score": score,
                                   "dimensions": dims, "error": error, "received": received})
        for key in (v["split"], "overall"):
            summary = results["summary"][key]
            summary["scores"].append(score)
            summary["by_task"].setdefault(v["task_name"], []).append(score)
            summary["by_category"].setdefault(v["category"], []).append(score)
    print()
    for summary in results["summary"].values():
        scores = summary["scores"]
        summary["mean_score"] = sum(scores) / len(scores) if scores else 0.0
        summary["num_samples"] = len(scores)
        for group in ("by_task", "by_category"):
            summary[group] = {k: sum(s) / len(s) for k, s in summary[group].items()}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, f"{model_name}_vbvr_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"  Overall:        {results['summary']['overall']['mean_score']:.4f}")
    return results


def main():
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--model_path")
    group.add_argument("--models_base")
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--gt_base", required=True)
    parser.add_argument("--output_dir")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    print(f"GT base: {args.gt_base}")
    if os.environ.get("STANDIN_FAIL"):
        raise RuntimeError("stand-in told to fail (STANDIN_FAIL)")
    output_dir = args.output_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluation_results",
                                                 os.path.basename((args.model_path or args.models_base).rstrip("/")))
    entries = [(os.path.basename(args.model_path.rstrip("/")), args.model_path)] if args.model_path else \
        [(d, os.path.join(args.models_base, d)) for d in sorted(os.listdir(args.models_base))]
    for name, path in entries:
        evaluate_model(name, path, args.gt_base, output_dir)


if __name__ == "__main__":
    main()
