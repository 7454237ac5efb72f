#!/usr/bin/env python3
"""Stand-in for VBVR-EvalKit's evaluate.py (see README.md): its command line, every .mp4 of every task
folder, and its <name>_eval_results.json; the score is the stand-in's toy weighted score."""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from vbvr_bench import evaluate_video, get_task_category, is_out_of_domain  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos_path", required=True)
    parser.add_argument("--gt_path", required=True)
    parser.add_argument("--output_path", default="./evaluation_results/")
    parser.add_argument("--name")
    parser.add_argument("--split", default="all")
    parser.add_argument("--tasks", nargs="+")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if os.environ.get("STANDIN_FAIL"):
        raise RuntimeError("stand-in told to fail (STANDIN_FAIL)")
    name = args.name or os.path.basename(args.videos_path.rstrip("/"))
    results = {"overall": {}, "In_Domain": {"scores": [], "by_task": {}}, "Out_of_Domain": {"scores": [], "by_task": {}},
               "by_task": {}, "detailed": []}
    for split_folder in (["In-Domain_50", "Out-of-Domain_50"] if args.split == "all" else [args.split]):
        split_path = os.path.join(args.videos_path, split_folder)
        if not os.path.exists(split_path):
            continue
        for task_name in sorted(args.tasks or os.listdir(split_path)):
            for video_file in sorted(f for f in os.listdir(os.path.join(split_path, task_name)) if f.endswith(".mp4")):
                idx = video_file.replace(".mp4", "")
                gt = os.path.join(args.gt_path, split_folder, task_name, idx)
                try:
                    score, dims, received = evaluate_video(os.path.join(split_path, task_name, video_file),
                                                           os.path.join(gt, "first_frame.png"), os.path.join(gt, "final_frame.png"),
                                                           weighted=True)
                    result = {"score": score, "dimensions": dims, "details": {}, "received": received}
                except Exception as exc:  # the kit scores a failing video 0 and goes on
                    result = {"score": 0.0, "error": str(exc), "dimensions": {}}
                split = "Out_of_Domain" if is_out_of_domain(task_name) else "In_Domain"
                result |= {"video_path": os.path.join(split_path, task_name, video_file), "task_name": task_name,
                           "split": split, "video_idx": idx}
                results["detailed"].append(result)
                results[split]["scores"].append(result["score"])
                results[split]["by_task"].setdefault(task_name, {"scores": [], "dimensions": {}})["scores"].append(result["score"])
                results["by_task"].setdefault(task_name, {"scores": [], "split": split})["scores"].append(result["score"])
    for split in ("In_Domain", "Out_of_Domain"):
        scores = results[split]["scores"]
        results[split]["mean_score"] = sum(scores) / len(scores) if scores else 0.0
        results[split]["num_videos"] = len(scores)
        for task in results[split]["by_task"].values():
            task["mean_score"] = sum(task["scores"]) / len(task["scores"])
    total = results["In_Domain"]["num_videos"] + results["Out_of_Domain"]["num_videos"]
    results["overall"]["mean_score"] = (sum(results["In_Domain"]["scores"]) + sum(results["Out_of_Domain"]["scores"])) / total if total else 0.0
    results["overall"]["num_videos"] = total
    results["by_category"] = {get_task_category(t): {} for t in results["by_task"]}
    os.makedirs(args.output_path, exist_ok=True)
    with open(os.path.join(args.output_path, f"{name}_eval_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"Overall Average: {results['overall']['mean_score']:.4f}")


if __name__ == "__main__":
    main()
