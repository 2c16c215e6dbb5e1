"""Tracking metrics (our HOTA, CLEAR MOT, Identity on mask IoUs): hand-computed cases, and agreement with
TrackEval, the reference implementation, on random sequences and real files (where TrackEval is installed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from eval_cases import dataset, result, track

import yolovis.eval.ytvis_eval as ytvis_eval
from yolovis.data.annotations import read_json
from yolovis.eval import evaluate_results
from yolovis.eval.tracking import TrackingAccumulator
from yolovis.eval.video_iou import FrameOverlaps

H, W = 40, 60
A, B = (0, 0, 20, 20), (30, 10, 50, 30)  # two disjoint boxes
REAL = Path(os.environ.get("YOLOVIS_REAL_VIS", Path(__file__).resolve().parents[1] / "../shared/data/real_vis"))


def tracking(gt_tracks: list[list], result_tracks: list[list], scores: list[float] | None = None, **kw) -> dict:
    n = len(gt_tracks[0])
    gt = dataset(
        [(1, n, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, b)} for b in gt_tracks]
    )
    scores = scores or [0.9] * len(result_tracks)
    res = [result(1, 1, s, track(H, W, b)) for s, b in zip(scores, result_tracks, strict=True)]
    return evaluate_results(gt, res, **kw)["tracking"]


def test_perfect_tracks():
    t = tracking([[A] * 4, [None, B, B, B]], [[A] * 4, [None, B, B, B]])
    assert (t["HOTA"], t["DetA"], t["AssA"], t["IDF1"]) == pytest.approx((1, 1, 1, 1))
    assert (t["IDSW"], t["Frag"], t["MOTA"]) == (0, 0, 1.0)


def test_track_split_in_two():
    # 6 frames, the result switches identity after frame 2: one switch, no gap.
    t = tracking([[A] * 6], [[A] * 3 + [None] * 3, [None] * 3 + [A] * 3])
    assert (t["IDSW"], t["Frag"]) == (1, 0)
    assert t["IDF1"] == pytest.approx(0.5)  # IDTP 3, IDFP 3, IDFN 3: 6 / (6 + 3 + 3)
    assert t["DetA"] == pytest.approx(1.0) and t["AssA"] == pytest.approx(0.5)  # each pair: 3 / (6 + 3 - 3)
    assert t["HOTA"] == pytest.approx(0.5**0.5)


def test_missing_frame():
    # Object A's track misses frame 2 (object B, tracked throughout, keeps that frame non-empty).
    t = tracking([[A] * 6, [B] * 6], [[A, A, None, A, A, A], [B] * 6])
    assert (t["IDSW"], t["Frag"]) == (0, 1)
    assert t["IDF1"] == pytest.approx(22 / 23)  # IDTP 11, IDFN 1, IDFP 0
    assert t["DetA"] == pytest.approx(11 / 12)
    assert t["AssA"] == pytest.approx((5 * 5 / 6 + 6 * 1) / 11)  # A's 5 matches at 5 / (6 + 5 - 5), B's at 1
    assert t["HOTA"] == pytest.approx((11 / 12 * (5 * 5 / 6 + 6) / 11) ** 0.5)


def test_frame_without_any_result_is_no_fragmentation_in_trackeval():
    # TrackEval's CLEAR skips a frame in which the sequence has no result at all before updating its
    # "tracked in the previous frame" state, so this gap is not counted as a fragmentation (it is one above).
    # We follow TrackEval's convention; this pins the behaviour down.
    t = tracking([[A] * 6], [[A, A, None, A, A, A]])
    assert (t["IDSW"], t["Frag"], t["CLR_FN"]) == (0, 0, 1)
    assert t["IDF1"] == pytest.approx(10 / 11) and t["HOTA"] == pytest.approx(5 / 6)


def test_track_shifted_by_one_frame():
    t = tracking([[A] * 5 + [None]], [[None] + [A] * 5])
    assert (t["CLR_TP"], t["CLR_FN"], t["CLR_FP"]) == (4, 1, 1)
    assert t["IDF1"] == pytest.approx(0.8)  # 8 / (8 + 1 + 1)
    assert t["HOTA"] == pytest.approx(2 / 3)  # DetA = AssA = 4 / 6


def test_identities_swapped_halfway():
    t = tracking([[A] * 4, [B] * 4], [[A, A, B, B], [B, B, A, A]])
    assert t["IDSW"] == 2 and t["Frag"] == 0
    assert t["IDF1"] == pytest.approx(0.5) and t["DetA"] == pytest.approx(1.0)


def test_score_threshold_drops_weak_tracks():
    gt, res = [[A] * 4], [[A] * 4, [B] * 4]
    assert tracking(gt, res, [0.9, 0.2])["CLR_FP"] == 4
    t = tracking(gt, res, [0.9, 0.2], track_score_threshold=0.5)
    assert t["CLR_FP"] == 0 and t["HOTA"] == pytest.approx(1.0)


def test_classes_are_separate_sequences():
    n = 3
    gt = dataset([(1, n, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, [A] * n)}])
    t = evaluate_results(gt, [result(1, 2, 0.9, track(H, W, [A] * n))])["tracking"]
    assert (t["CLR_TP"], t["CLR_FN"], t["CLR_FP"], t["HOTA"]) == (0, 3, 3, 0.0)


# Hand-computed cases on the accumulator itself: per-frame IoUs are given directly, so every figure can be
# worked out on paper (HOTA over the 19 thresholds alpha = 0.05..0.95; IoU 0.82 is a match up to alpha 0.80).
COUNT_KEYS = ("IDTP", "IDFP", "IDFN", "IDSW", "Frag", "MT", "PT", "ML", "CLR_TP", "CLR_FP", "CLR_FN")


def video_summary(frames: list[tuple[list[int], list[int], list[list[float]]]], n_dt: int, n_gt: int) -> dict:
    """frames: (result tracks present, gt tracks present, IoU rows per result) per frame; one class."""
    overlaps = [
        FrameOverlaps(np.array(d, dtype=np.int64), np.array(g, dtype=np.int64), np.array(iou).reshape(len(d), len(g)))
        for d, g, iou in frames
    ]
    acc = TrackingAccumulator()
    acc.add_video(overlaps, np.ones(n_dt, np.int64), np.ones(n_dt), np.ones(n_gt, np.int64), np.zeros(n_gt, bool))
    return acc.summary()


def assert_summary(t: dict, **expected: float) -> None:
    assert set(t) == {*expected, "score_threshold"}
    for key, value in expected.items():
        if key in COUNT_KEYS:
            assert type(t[key]) is int and t[key] == value, key
        else:
            assert type(t[key]) is float and t[key] == pytest.approx(value, abs=1e-12), key


PERFECT = dict(IDF1=1, IDP=1, IDR=1, IDSW=0, Frag=0, MOTA=1, PT=0, ML=0, CLR_FP=0, CLR_FN=0, IDFP=0, IDFN=0)


def test_hand_perfect_tracker():
    frames = [([0], [0], [[1.0]]), ([0, 1], [0, 1], [[1.0, 0.0], [0.0, 1.0]]), ([0, 1], [0, 1], [[1, 0], [0, 1]])]
    t = video_summary(frames, 2, 2)
    assert_summary(t, HOTA=1, DetA=1, AssA=1, LocA=1, MOTP=1, MT=2, CLR_TP=5, IDTP=5, **PERFECT)
    # Right identities, imperfect masks: alpha 0.85..0.95 have no match (LocA is 1 there, as in TrackEval).
    frames = [(d, g, np.array(iou) * 0.82) for d, g, iou in frames]
    t = video_summary(frames, 2, 2)
    s = 16 / 19
    assert_summary(t, HOTA=s, DetA=s, AssA=s, LocA=(16 * 0.82 + 3) / 19, MOTP=0.82, MT=2, CLR_TP=5, IDTP=5, **PERFECT)


def test_hand_one_identity_switch():
    # One object over 4 frames; result 0 has frames 0-1, result 1 frames 2-3.
    t = video_summary([([0], [0], [[1.0]])] * 2 + [([1], [0], [[1.0]])] * 2, 2, 1)
    # AssA: each result shares 2 matches with a 4-frame gt: 2 / (4 + 2 - 2) = 0.5 for each of the 4 TPs.
    # CLEAR: 4 TPs, one switch: MOTA (4 - 1) / 4. Identity: the gt matches one result for 2 of its 4 frames.
    assert_summary(
        t,
        HOTA=0.5**0.5,
        DetA=1,
        AssA=0.5,
        LocA=1,
        IDF1=0.5,
        IDP=0.5,
        IDR=0.5,
        IDTP=2,
        IDFP=2,
        IDFN=2,
        IDSW=1,
        Frag=0,
        MOTA=0.75,
        MOTP=1,
        MT=1,
        PT=0,
        ML=0,
        CLR_TP=4,
        CLR_FP=0,
        CLR_FN=0,
    )


def test_hand_one_fragmentation():
    # One object over 5 frames; its result is poor (IoU 0.32) in frame 2: lost there under 0.5, then resumed.
    t = video_summary([([0], [0], [[1.0]])] * 2 + [([0], [0], [[0.32]])] + [([0], [0], [[1.0]])] * 2, 1, 1)
    # alpha <= 0.30 (6 of 19): all 5 frames match, AssA 1. alpha >= 0.35 (13): 4 TP, 1 FN, 1 FP: DetA 4/6, and
    # AssA 4 / (5 + 5 - 4). The gt is matched in 4 frames of 5, not more than 80%: partly tracked.
    s = (6 + 13 * 2 / 3) / 19
    assert_summary(
        t,
        HOTA=s,
        DetA=s,
        AssA=s,
        LocA=(6 * (4 + 0.32) / 5 + 13) / 19,
        IDF1=0.8,
        IDP=0.8,
        IDR=0.8,
        IDTP=4,
        IDFP=1,
        IDFN=1,
        IDSW=0,
        Frag=1,
        MOTA=(4 - 1) / 5,
        MOTP=1,
        MT=0,
        PT=1,
        ML=0,
        CLR_TP=4,
        CLR_FP=1,
        CLR_FN=1,
    )


def test_hand_false_positive():
    # A tracked object (3 frames) and a spurious result track in frames 1-2 overlapping nothing.
    t = video_summary([([0], [0], [[1.0]])] + [([0, 1], [0], [[1.0], [0.0]])] * 2, 2, 1)
    # HOTA: 3 TPs, 2 FPs at every alpha: DetA 3 / 5, AssA 1. CLEAR: MOTA (3 - 2) / 3. Identity: IDP 3 / 5.
    assert_summary(
        t,
        HOTA=0.6**0.5,
        DetA=0.6,
        AssA=1,
        LocA=1,
        IDF1=0.75,
        IDP=0.6,
        IDR=1,
        IDTP=3,
        IDFP=2,
        IDFN=0,
        IDSW=0,
        Frag=0,
        MOTA=1 / 3,
        MOTP=1,
        MT=1,
        PT=0,
        ML=0,
        CLR_TP=3,
        CLR_FP=2,
        CLR_FN=0,
    )


def test_hand_empty_video():
    empty = ([], [], [])
    zero = dict(HOTA=0, DetA=0, AssA=0, LocA=0, IDF1=0, IDP=0, IDR=0)
    assert TrackingAccumulator(0.3).summary() == zero  # no sequence at all: the short form, no counts
    assert video_summary([empty] * 3, 0, 0) == zero
    assert video_summary([], 0, 0) == zero


def test_hand_no_ground_truth():
    # 3 result detections and nothing to match: MOTA is -FP / max(1, 0) as in TrackEval; LocA 1 with no match.
    t = video_summary([([0], [], [])] * 3 + [([], [], [])], 1, 0)
    zero = dict(HOTA=0, DetA=0, AssA=0, IDF1=0, IDP=0, IDR=0, IDTP=0, IDFN=0, IDSW=0, Frag=0, MOTP=0)
    assert_summary(t, **zero, LocA=1, IDFP=3, MOTA=-3, MT=0, PT=0, ML=0, CLR_TP=0, CLR_FP=3, CLR_FN=0)


def test_hand_no_detections():
    t = video_summary([([], [0], [])] * 3 + [([], [0, 1], [])] * 2, 0, 2)
    zero = dict(HOTA=0, DetA=0, AssA=0, IDF1=0, IDP=0, IDR=0, IDTP=0, IDFP=0, IDSW=0, Frag=0, MOTA=0, MOTP=0)
    assert_summary(t, **zero, LocA=1, IDFN=7, MT=0, PT=0, ML=2, CLR_TP=0, CLR_FP=0, CLR_FN=7)


def test_works_without_trackeval(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackeval", None)  # any `import trackeval` now fails
    t = tracking([[A] * 4, [None, B, B, B]], [[A] * 4, [None, B, B, B]])
    assert t["HOTA"] == pytest.approx(1.0) and t["IDF1"] == 1.0
    gt = dataset([(1, 2, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, [A] * 2)}])
    assert "tracking" not in evaluate_results(gt, [], tracking=False)


# Agreement with TrackEval, the HOTA authors' implementation: its metric classes on the same per-sequence dicts.
# TrackEval is installed for these tests only (.ci/run); elsewhere they skip.


class TrackEvalAccumulator(TrackingAccumulator):
    """The same sequences scored by TrackEval's HOTA, CLEAR and Identity, pooled with its combine_sequences."""

    def __init__(self, score_threshold: float = 0.0):
        from trackeval.metrics import CLEAR, HOTA, Identity

        super().__init__(score_threshold)
        quiet = {"PRINT_CONFIG": False}
        self.metrics = (HOTA(quiet), CLEAR(quiet), Identity(quiet))
        self.per_sequence: list[tuple] = []

    def add_sequence(self, data: dict) -> None:
        self.per_sequence.append(tuple(m.eval_sequence(data) for m in self.metrics))

    def summary(self) -> dict:
        if not self.per_sequence:
            return {"HOTA": 0.0, "DetA": 0.0, "AssA": 0.0, "LocA": 0.0, "IDF1": 0.0, "IDP": 0.0, "IDR": 0.0}
        hota, clear, ident = (
            m.combine_sequences({i: seq[j] for i, seq in enumerate(self.per_sequence)})
            for j, m in enumerate(self.metrics)
        )
        out = {k: float(np.mean(hota[k])) for k in ("HOTA", "DetA", "AssA", "LocA")}
        out |= {k: float(ident[k]) for k in ("IDF1", "IDP", "IDR")}
        out |= {k: int(ident[k]) for k in ("IDTP", "IDFP", "IDFN")}
        out |= {k: int(clear[k]) for k in ("IDSW", "Frag")}
        out |= {k: float(clear[k]) for k in ("MOTA", "MOTP")}
        out |= {k: int(clear[k]) for k in ("MT", "PT", "ML", "CLR_TP", "CLR_FP", "CLR_FN")}
        return {**out, "score_threshold": self.score_threshold}


def assert_same(ours: dict, ref: dict, where: str) -> None:
    assert list(ours) == list(ref), where
    for key, value in ref.items():
        assert type(ours[key]) is type(value), (where, key)
        if isinstance(value, int):
            assert ours[key] == value, (where, key)
        else:
            assert ours[key] == pytest.approx(value, abs=1e-9), (where, key)


LEVELS = np.array([0.0, 0.05, 0.2, 0.35, 0.5, 0.5, 0.5, 0.7, 0.95, 1.0])  # IoUs on thresholds, and ties
FEW_LEVELS = np.array([0.0, 0.5, 0.5, 1.0])  # ties nearly everywhere


def random_video(rng: np.random.Generator) -> tuple:
    """add_video's arguments: random presence (empty frames included), IoUs, classes, scores and crowds."""
    n, D, G = int(rng.integers(1, 16)), int(rng.integers(0, 8)), int(rng.integers(0, 8))
    dt_on = rng.random((n, D)) < rng.choice([0.15, 0.5, 0.9, 1.0])
    gt_on = rng.random((n, G)) < rng.choice([0.15, 0.5, 0.9, 1.0])
    dt_on[rng.random(n) < 0.15] = False
    gt_on[rng.random(n) < 0.1] = False
    # Each result follows one gt, switching now and then, so that identities (IDSW, AssA) mean something.
    follows = rng.integers(0, max(G, 1), D)
    levels = None if rng.random() < 0.4 else LEVELS if rng.random() < 0.6 else FEW_LEVELS
    frames = []
    for f in range(n):
        switch = rng.random(D) < 0.1
        follows[switch] = rng.integers(0, max(G, 1), int(switch.sum()))
        d, g = np.flatnonzero(dt_on[f]), np.flatnonzero(gt_on[f])
        shape = (len(d), len(g))
        if levels is None:
            noise, good = rng.random(shape), rng.uniform(0.3, 1.0, shape)
        else:
            noise, good = rng.choice(levels, shape), rng.choice(levels[levels >= 0.5], shape)
        noise[rng.random(shape) < 0.6] = 0.0
        same = (follows[d][:, None] == g[None, :]) & (rng.random(shape) < 0.9)
        frames.append(FrameOverlaps(d, g, np.where(same, good, noise)))
    scores = rng.choice([0.1, 0.4, 0.9], D) if rng.random() < 0.5 else rng.random(D)
    return frames, rng.integers(1, 3, D), scores, rng.integers(1, 3, G), rng.random(G) < 0.08


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_trackeval_on_random_sequences(seed):
    pytest.importorskip("trackeval")
    rng = np.random.default_rng(seed)
    pooled = {thr: (TrackingAccumulator(thr), TrackEvalAccumulator(thr)) for thr in (0.0, 0.3)}
    for i in range(400):
        video, thr = random_video(rng), float(rng.choice([0.0, 0.3]))
        alone = TrackingAccumulator(thr), TrackEvalAccumulator(thr)
        for acc in (*alone, *pooled[thr]):
            acc.add_video(*video)
        assert_same(alone[0].summary(), alone[1].summary(), f"video {i}")
    for thr, (ours, ref) in pooled.items():
        assert ours.num_sequences > 300
        assert_same(ours.summary(), ref.summary(), f"all videos, score >= {thr}")


@pytest.mark.parametrize(
    "pair",
    [
        ("bdd100k_mots_b1c66a42_as_ytvis_gt.json.gz", "bdd100k_mots_b1c66a42_as_ytvis_results.json.gz"),
        ("davis17val_osvos_as_ytvis_gt.json.gz", "davis17val_rvos_as_ytvis_results.json.gz"),
    ],
)
def test_agrees_with_trackeval_on_real_data(pair, monkeypatch):
    pytest.importorskip("trackeval")
    paths = [REAL / name for name in pair]
    if not all(p.exists() for p in paths):
        pytest.skip(f"real data absent from {REAL}")
    videos = []

    class Recorder(TrackingAccumulator):
        def add_video(self, *args) -> None:
            videos.append(args)
            super().add_video(*args)

    monkeypatch.setattr(ytvis_eval, "TrackingAccumulator", Recorder)
    gt, res = (read_json(p) for p in paths)
    reported = evaluate_results(gt, res)["tracking"]  # score >= 0: all result tracks
    for thr in (0.0, 0.5):
        ours, ref = TrackingAccumulator(thr), TrackEvalAccumulator(thr)
        for acc in (ours, ref):
            for video in videos:
                acc.add_video(*video)
        assert_same(ours.summary(), ref.summary(), f"{pair[1]}, score >= {thr}")
        assert ours.summary()["CLR_TP"] > 100
        if thr == 0.0:
            assert reported == ours.summary()
