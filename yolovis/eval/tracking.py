"""Tracking quality of a results file: HOTA, CLEAR MOT (MOTA, IDSW, Frag, MT/PT/ML) and IDF1 on mask tracks.

Our own implementation of the published definitions, on the per-frame mask IoUs already computed for the
video AP:
- HOTA (Luiten et al., IJCV 2021): per frame, Hungarian matching that maximises the association-aware score,
  then DetA, AssA and LocA at each of the 19 localisation thresholds alpha = 0.05..0.95, averaged over alpha;
- CLEAR MOT (Bernardin & Stiefelhagen 2008) with the MOTChallenge conventions: IoU threshold 0.5, matches of
  the previous frame kept where still valid, IDSW against the last match, Frag, MT/PT/ML at 80% / 20%;
- Identity (Ristani et al. 2016): one global min-cost bipartite matching of ids, IoU threshold 0.5.
TrackEval (the HOTA authors' code, used by the MOT/KITTI/BDD/YouTube-VIS benchmarks) is the reference: where
the papers leave a convention open we follow TrackEval's, so that the figures are TrackEval's (checked in
tests/test_eval_tracking.py, to 1e-9, on random sequences and real files).

As in TrackEval's YouTube-VIS reader, each class is its own sequence (results of class c against ground truth
of class c) and all result tracks count unless `score_threshold` drops the weak ones. Crowd ground-truth
tracks are left out (TrackEval's YouTube-VIS reader has no crowd handling for these metrics). Figures are
pooled over videos and classes ("detection-averaged" in TrackEval's terms): counts are summed, not averaged
per class.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from yolovis.eval.video_iou import FrameOverlaps

# HOTA's 19 thresholds 0.05..0.95, spelled as TrackEval spells them so that the floats are the same to the bit.
ALPHAS = np.arange(0.05, 0.99, 0.05)
THRESHOLD = 0.5  # CLEAR and Identity
EPS = np.finfo(float).eps  # TrackEval's tolerance on thresholds; kept so that borderline IoUs match the same way


class TrackingAccumulator:
    """Feed it one video at a time (`add_video`), then read `summary()`."""

    def __init__(self, score_threshold: float = 0.0):
        self.score_threshold = score_threshold
        self.num_sequences = 0
        self.totals: dict[str, np.ndarray | float] = {}  # every count summed over sequences

    def add_video(
        self,
        frames: list[FrameOverlaps],
        dt_categories: np.ndarray,
        dt_scores: np.ndarray,
        gt_categories: np.ndarray,
        gt_crowd: np.ndarray,
    ) -> None:
        # Tracks null in every frame have no detection to count; the ratios (MT/PT/ML, AssA) would be 0 / 0.
        dt_seen = np.zeros(len(dt_scores), dtype=bool)
        gt_seen = np.zeros(len(gt_crowd), dtype=bool)
        for fr in frames:
            dt_seen[fr.dt] = True
            gt_seen[fr.gt] = True
        keep_dt = dt_seen & (dt_scores >= self.score_threshold)
        keep_gt = gt_seen & ~gt_crowd
        for cat in np.unique(np.concatenate([dt_categories[keep_dt], gt_categories[keep_gt]])):
            dt_sel = keep_dt & (dt_categories == cat)
            gt_sel = keep_gt & (gt_categories == cat)
            self.add_sequence(sequence_data(frames, dt_sel, gt_sel))

    def add_sequence(self, data: dict) -> None:
        """One sequence as `sequence_data` builds it; every id in it must be present in some frame."""
        self.num_sequences += 1
        for counts in (hota_counts(data), clear_counts(data), identity_counts(data)):
            for key, value in counts.items():
                self.totals[key] = self.totals.get(key, 0) + value

    def summary(self) -> dict:
        if not self.num_sequences:
            return {"HOTA": 0.0, "DetA": 0.0, "AssA": 0.0, "LocA": 0.0, "IDF1": 0.0, "IDP": 0.0, "IDR": 0.0}
        c = self.totals
        # HOTA pooled as TrackEval's combine_sequences does: sum the per-alpha counts, then recompute.
        tp, fn, fp = c["hota_tp"], c["hota_fn"], c["hota_fp"]
        det_a = tp / np.maximum(1, tp + fn + fp)
        ass_a = c["ass_sum"] / np.maximum(1, tp)
        loc_a = np.where(tp > 0, c["loc_sum"] / np.maximum(1, tp), 1.0)  # TrackEval's LocA is 1 with no match
        clr_tp, clr_fn, clr_fp, idsw = (int(c[k]) for k in ("clr_tp", "clr_fn", "clr_fp", "idsw"))
        idtp, idfn, idfp = (int(c[k]) for k in ("idtp", "idfn", "idfp"))
        return {
            "HOTA": float(np.mean(np.sqrt(det_a * ass_a))),  # per alpha, then averaged over the 19 thresholds
            "DetA": float(np.mean(det_a)),
            "AssA": float(np.mean(ass_a)),
            "LocA": float(np.mean(loc_a)),
            "IDF1": float(idtp / max(1.0, idtp + 0.5 * idfp + 0.5 * idfn)),
            "IDP": float(idtp / max(1.0, idtp + idfp)),
            "IDR": float(idtp / max(1.0, idtp + idfn)),
            "IDTP": idtp,
            "IDFP": idfp,
            "IDFN": idfn,
            "IDSW": idsw,
            "Frag": int(c["frag"]),
            "MOTA": float((clr_tp - clr_fp - idsw) / max(1.0, clr_tp + clr_fn)),
            "MOTP": float(c["sim_sum"] / max(1.0, clr_tp)),
            "MT": int(c["mt"]),
            "PT": int(c["pt"]),
            "ML": int(c["ml"]),
            "CLR_TP": clr_tp,
            "CLR_FP": clr_fp,
            "CLR_FN": clr_fn,
            "score_threshold": self.score_threshold,
        }


def sequence_data(frames: list[FrameOverlaps], dt_sel: np.ndarray, gt_sel: np.ndarray) -> dict:
    """The per-sequence dict (TrackEval's layout) for the selected result and ground-truth tracks of one video.

    dt_sel, gt_sel: (D,), (G,) bool masks over the video's tracks. Ids are renumbered 0..n-1;
    similarity_scores[t] is (gt present at t, results present at t) mask IoU.
    """
    dt_new = np.cumsum(dt_sel) - 1  # old index -> new id (valid where selected)
    gt_new = np.cumsum(gt_sel) - 1
    gt_ids, dt_ids, sims = [], [], []
    for fr in frames:
        di = np.flatnonzero(dt_sel[fr.dt])  # positions inside this frame's lists
        gi = np.flatnonzero(gt_sel[fr.gt])
        dt_ids.append(dt_new[fr.dt[di]])
        gt_ids.append(gt_new[fr.gt[gi]])
        sims.append(fr.iou[np.ix_(di, gi)].T if len(di) and len(gi) else np.zeros((len(gi), len(di))))
    return {
        "num_timesteps": len(frames),
        "num_gt_ids": int(gt_sel.sum()),
        "num_tracker_ids": int(dt_sel.sum()),
        "num_gt_dets": int(sum(len(g) for g in gt_ids)),
        "num_tracker_dets": int(sum(len(d) for d in dt_ids)),
        "gt_ids": gt_ids,
        "tracker_ids": dt_ids,
        "similarity_scores": sims,
    }


def _frames(data: dict) -> zip:
    return zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"], strict=True)


def _id_counts(ids: list[np.ndarray], n: int) -> np.ndarray:
    return np.bincount(np.concatenate([np.zeros(0, np.int64), *ids]).astype(np.int64), minlength=n)


def hota_counts(data: dict) -> dict:
    """Per-alpha HOTA counts of one sequence: TP, FN, FP, and the sums that AssA and LocA average over the TPs."""
    G, T = data["num_gt_ids"], data["num_tracker_ids"]
    n_gt, n_dt = data["num_gt_dets"], data["num_tracker_dets"]
    tp = np.zeros(len(ALPHAS))
    ass_sum = np.zeros(len(ALPHAS))
    loc_sum = np.zeros(len(ALPHAS))
    if n_gt and n_dt:
        gt_count, dt_count = _id_counts(data["gt_ids"], G), _id_counts(data["tracker_ids"], T)

        # How strongly ids g and t belong together over the whole sequence (TrackEval's estimate of the paper's
        # A_max): a soft count of the frames in which they match, each frame's share being the pair's IoU over the
        # IoU mass of its row and column (1 when they overlap only each other), over the frames either is in.
        soft = np.zeros((G, T))
        for g, t, s in _frames(data):
            union = s.sum(0)[np.newaxis, :] + s.sum(1)[:, np.newaxis] - s
            share = np.where(union > EPS, s / np.where(union > EPS, union, 1.0), 0.0)
            soft[g[:, np.newaxis], t[np.newaxis, :]] += share
        # Co-present pairs, the only ones read below, have a denominator >= 1; the clip spares the others 0 / 0.
        alignment = soft / np.maximum(1.0, gt_count[:, np.newaxis] + dt_count[np.newaxis, :] - soft)

        # One matching per frame, IoU weighed by alignment: among similar overlaps, the pair that belongs together
        # over the sequence wins, which is what AssA rewards.
        # TrackEval matches once and thresholds that matching at every alpha (rather than matching per alpha).
        none = np.zeros(0, np.int64)
        pairs_g, pairs_t, pairs_s = [none], [none], [np.zeros(0)]  # no frame may hold both
        for g, t, s in _frames(data):
            if len(g) and len(t):
                rows, cols = linear_sum_assignment(alignment[g[:, np.newaxis], t[np.newaxis, :]] * s, maximize=True)
                pairs_g.append(g[rows])
                pairs_t.append(t[cols])
                pairs_s.append(s[rows, cols])
        sim = np.concatenate(pairs_s)
        hit = sim[np.newaxis, :] >= ALPHAS[:, np.newaxis] - EPS  # (alpha, match): a true positive at that alpha
        tp = hit.sum(1).astype(float)
        loc_sum = (hit * sim).sum(1)

        # AssA: for each TP, the IoU of the two whole tracks counted in matches (TPA / (TPA + FNA + FPA)).
        pair, which = np.unique(np.concatenate(pairs_g) * T + np.concatenate(pairs_t), return_inverse=True)
        slot = np.arange(len(ALPHAS))[:, np.newaxis] * len(pair) + which[np.newaxis, :]
        matches = np.bincount(slot[hit], minlength=len(ALPHAS) * len(pair)).reshape(len(ALPHAS), len(pair))
        both = gt_count[pair // T] + dt_count[pair % T]
        ass_sum = (matches * (matches / np.maximum(1, both - matches))).sum(1)
    return {"hota_tp": tp, "hota_fn": n_gt - tp, "hota_fp": n_dt - tp, "ass_sum": ass_sum, "loc_sum": loc_sum}


def clear_counts(data: dict) -> dict:
    """CLEAR MOT counts of one sequence (MOTChallenge conventions, as TrackEval computes them)."""
    G = data["num_gt_ids"]
    tp = fn = fp = idsw = 0
    sim_sum = 0.0
    present = np.zeros(G)  # frames each gt is evaluated in, and matched in: MT/PT/ML
    matched = np.zeros(G)
    runs = np.zeros(G, dtype=np.int64)  # stretches of consecutive matched frames: Frag = runs - 1
    last = np.full(G, -1)  # result id each gt was last matched to, however long ago: IDSW
    prev = np.full(G, -1)  # result id it was matched to in the previous evaluated frame (-1: none)
    for g, t, s in _frames(data):
        if not len(g):
            fp += len(t)
            continue
        present[g] += 1
        if not len(t):
            # TrackEval's convention: a frame with no result at all is skipped, not seen as a gap, so it breaks
            # neither `prev` (continuation) nor a stretch (Frag).
            fn += len(g)
            continue
        # Keep last frame's matches where still valid (the paper's first step): a bonus of 1000 outweighs the
        # summed IoUs of any frame with under 1000 objects, and the IoU then decides among the rest.
        continued = prev[g][:, np.newaxis] == t[np.newaxis, :]
        score = np.where(s >= THRESHOLD - EPS, 1000.0 * continued + s, 0.0)
        rows, cols = linear_sum_assignment(score, maximize=True)
        ok = score[rows, cols] > EPS  # the Hungarian also pairs below-threshold leftovers
        rows, cols = rows[ok], cols[ok]
        mg, mt = g[rows], t[cols]
        idsw += int(np.sum((last[mg] >= 0) & (last[mg] != mt)))
        last[mg] = mt
        was_tracked = prev >= 0
        prev[:] = -1
        prev[mg] = mt
        runs += (prev >= 0) & ~was_tracked
        matched[mg] += 1
        tp += len(rows)
        fn += len(g) - len(rows)
        fp += len(t) - len(rows)
        sim_sum += float(s[rows, cols].sum())
    ratio = matched[present > 0] / present[present > 0]
    mt_count = int(np.sum(ratio > 0.8))
    pt_count = int(np.sum(ratio >= 0.2)) - mt_count
    return {
        "clr_tp": tp,
        "clr_fn": fn,
        "clr_fp": fp,
        "idsw": idsw,
        "frag": int(np.sum(np.maximum(runs - 1, 0))),
        "mt": mt_count,
        "pt": pt_count,
        "ml": G - mt_count - pt_count,
        "sim_sum": sim_sum,
    }


def identity_counts(data: dict) -> dict:
    """IDTP, IDFN, IDFP of one sequence under the best one-to-one matching of gt ids to result ids."""
    G, T = data["num_gt_ids"], data["num_tracker_ids"]
    # Frames in which gt id g and result id t overlap enough to count as the same object (TrackEval: no eps here).
    together = np.zeros((G, T))
    for g, t, s in _frames(data):
        gi, ti = np.nonzero(s >= THRESHOLD)
        together[g[gi], t[ti]] += 1
    # Ristani et al. minimise IDFN + IDFP over matchings with "unmatched" allowed. Matching (g, t) costs
    # (n_g - together) + (n_t - together), leaving either unmatched costs n_g or n_t: the total is
    # n_gt + n_dt - 2 * sum(together over matched pairs), so the best matching maximises the frames shared.
    rows, cols = linear_sum_assignment(together, maximize=True)
    idtp = int(together[rows, cols].sum())
    return {"idtp": idtp, "idfn": data["num_gt_dets"] - idtp, "idfp": data["num_tracker_dets"] - idtp}
