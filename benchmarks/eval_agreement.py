"""Agreement of `yolovis.eval` with the slow independent reference of tests/ytvis_reference.py on whole files.

    python benchmarks/eval_agreement.py [--real ../shared/data/real_vis] [--bdd-frames 20] [--synthetic 5]

The tests compare on small cuts (to stay fast); this script compares on the whole DAVIS 2017 val pair
(30 videos), the BDD100K MOTS pair cut to its first `--bdd-frames` frames (the reference decodes every mask of
every frame pixel by pixel: all 100 frames take many minutes), and `--synthetic` random imperfect files of
tests/eval_cases.py. Prints, per file, the largest absolute difference over the 12 official figures and AP80.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from eval_cases import random_case  # noqa: E402
from ytvis_reference import reference_metrics  # noqa: E402

from yolovis.eval import OFFICIAL_KEYS, evaluate_results  # noqa: E402

PAIRS = {
    "DAVIS 2017 val, RVOS results": (
        "davis17val_osvos_as_ytvis_gt.json.gz",
        "davis17val_rvos_as_ytvis_results.json.gz",
    ),
    "BDD100K MOTS, scalabel results": (
        "bdd100k_mots_b1c66a42_as_ytvis_gt.json.gz",
        "bdd100k_mots_b1c66a42_as_ytvis_results.json.gz",
    ),
}


def first_frames(gt: dict, results: list, n: int) -> None:
    for v in gt["videos"]:
        v["file_names"] = v["file_names"][:n]
        v["length"] = len(v["file_names"])
    for a in gt["annotations"]:
        for key in ("segmentations", "areas", "bboxes"):
            if key in a:
                a[key] = a[key][:n]
    for r in results:
        r["segmentations"] = r["segmentations"][:n]


def compare(name: str, gt: dict, results: list) -> None:
    t = time.perf_counter()
    ours = evaluate_results(gt, results, tracking=False)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    ref = reference_metrics(gt, results)
    t_ref = time.perf_counter() - t
    keys = [*OFFICIAL_KEYS, "AP80"]
    diff = max(abs(ours[k] - ref[k]) for k in keys)
    figures = f"AP {ours['AP']:.4f} AP50 {ours['AP50']:.4f} AR10 {ours['AR10']:.4f}"
    print(f"{name}: {len(gt['videos'])} videos, {len(results)} results | max |ours - reference| = {diff:.2e} | "
          f"{figures} | {t_ours:.1f} s vs {t_ref:.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", default=str(ROOT.parent / "shared/data/real_vis"))
    parser.add_argument("--bdd-frames", type=int, default=20)
    parser.add_argument("--synthetic", type=int, default=5)
    args = parser.parse_args()
    for name, (g, r) in PAIRS.items():
        paths = [Path(args.real) / g, Path(args.real) / r]
        if not all(p.exists() for p in paths):
            print(f"{name}: skipped, {paths[0].parent} lacks it")
            continue
        gt, results = (json.loads(gzip.decompress(p.read_bytes())) for p in paths)
        if name.startswith("BDD"):
            first_frames(gt, results, args.bdd_frames)
            name += f" (first {args.bdd_frames} frames)"
        compare(name, gt, results)
    for seed in range(args.synthetic):
        gt, results = random_case(100 + seed, num_videos=6)
        compare(f"synthetic seed {100 + seed}", gt, results)


if __name__ == "__main__":
    main()
