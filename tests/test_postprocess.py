import math

import numpy as np
import torch
from torchvision.ops import box_iou

from yolovis.config import PostprocessConfig
from yolovis.data.letterbox import LetterboxInfo
from yolovis.model.anchors import decode_boxes, encode_boxes
from yolovis.model.detector import ModelOutput, selection_for_inference
from yolovis.model.mask_head import expand_boxes
from yolovis.model.postprocess import Postprocess, paste_masks
from yolovis.model.proposals import select_boxes

K = 3
STRIDES = (4, 8, 16, 32)
H = W = 128


def blank_output(batch: int = 1) -> ModelOutput:
    preds = []
    for s in STRIDES:
        p = torch.zeros(batch, 2, H // s, W // s, 5 + K)
        p[..., 4] = -20.0  # objectness ~ 0 everywhere
        preds.append(p)
    anchors = torch.tensor(
        [[[8.0, 8.0], [16.0, 8.0]], [[16, 16], [32, 16]], [[32, 32], [64, 32]], [[64, 64], [128, 64]]]
    )
    embeddings = [torch.zeros(batch, 4, H // s, W // s) for s in STRIDES]
    return ModelOutput(preds, embeddings, anchors, STRIDES, [], [], torch.zeros(0, 28, 28))


def place(out: ModelOutput, level: int, anchor: int, row: int, col: int, box: torch.Tensor, label: int, b: int = 0):
    """Write the raw outputs that decode to `box` with objectness 0.9 and a confident class."""
    stride = STRIDES[level]
    deltas = encode_boxes(box[None], out.anchors[level, anchor][None], torch.tensor([[col, row]]), stride)[0]
    cell = out.predictions[level][b, anchor, row, col]
    cell[:4] = deltas
    cell[4] = math.log(0.9 / 0.1)
    cell[5:] = -10.0
    cell[5 + label] = 10.0


def selected(out: ModelOutput, cfg: PostprocessConfig) -> list:
    """The forward's box selection on hand-written head outputs, as (boxes, scores, labels) per image."""
    proposals = select_boxes(out.predictions, out.anchors, out.strides, selection_for_inference(cfg))
    return [(p.boxes, p.scores, p.labels) for p in proposals]


def postprocess(out: ModelOutput, cfg: PostprocessConfig, letterboxes: list[LetterboxInfo]) -> list:
    """The forward's selection, a mask head whose every logit says "object" (the pasted mask must then fill the
    box), then the postprocess."""
    out.proposals = select_boxes(out.predictions, out.anchors, out.strides, selection_for_inference(cfg))
    out.rois = [p.boxes for p in out.proposals]
    out.mask_logits = torch.full((sum(len(r) for r in out.rois), 28, 28), 10.0)
    return Postprocess(cfg)(out, letterboxes)


def test_known_boxes_come_back_in_frame_pixels():
    out = blank_output()
    box_a = torch.tensor([20.0, 30.0, 50.0, 70.0])
    box_b = torch.tensor([70.0, 64.0, 120.0, 100.0])
    place(out, level=0, anchor=1, row=12, col=8, box=box_a, label=2)
    place(out, level=2, anchor=0, row=5, col=6, box=box_b, label=0)
    # The 128x128 input is a 256x192 (W x H) frame letterboxed: scale 0.5, 16 px of padding top and bottom.
    lb = LetterboxInfo(orig_h=192, orig_w=256, input_h=128, input_w=128, scale=0.5, pad_x=0.0, pad_y=16.0)
    (det,) = postprocess(out, PostprocessConfig(score_threshold=0.5), [lb])
    assert len(det) == 2
    order = det.labels.argsort(descending=True)
    expected = torch.stack([box_a, box_b]) - torch.tensor([0.0, 16, 0, 16])
    torch.testing.assert_close(det.boxes[order], expected * 2, atol=1e-3, rtol=0)
    assert det.labels[order].tolist() == [2, 0]
    expected_score = 0.9 * torch.softmax(torch.tensor([10.0, -10, -10]), 0)[0]
    torch.testing.assert_close(det.scores, expected_score.repeat(2), atol=1e-5, rtol=0)
    assert det.masks.shape == (2, 192, 256) and det.masks.dtype == torch.bool
    for mask, box in zip(det.masks[order], expected * 2, strict=True):
        x0, y0, x1, y1 = box.round().int().tolist()
        assert mask.sum().item() == (x1 - x0) * (y1 - y0)
        assert mask[y0:y1, x0:x1].all()


def test_masks_are_pasted_into_the_box_as_the_mask_head_saw_it():
    # With mask_roi_scale 1.5 the mask head's 28x28 covers the box enlarged 1.5 times about its centre: an
    # all-object mask fills that larger box (clipped to the frame), the detection's box stays the box.
    out = blank_output()
    out.mask_roi_scale = 1.5
    box = torch.tensor([20.0, 40.0, 60.0, 80.0])
    place(out, level=1, anchor=0, row=15, col=10, box=box, label=1)
    lb = LetterboxInfo(orig_h=128, orig_w=128, input_h=128, input_w=128, scale=1.0, pad_x=0.0, pad_y=0.0)
    (det,) = postprocess(out, PostprocessConfig(score_threshold=0.5), [lb])
    torch.testing.assert_close(det.boxes[0], box, atol=1e-3, rtol=0)
    assert det.masks[0].sum().item() == 60 * 60 and det.masks[0][30:90, 10:70].all()
    assert det.mask_rects[0].tolist() == [10, 30, 70, 90]
    assert torch.equal(expand_boxes(box[None], 1.0), box[None])


def test_empty_input_gives_empty_detections():
    out = blank_output(batch=2)
    lb = LetterboxInfo.fit(100, 140, 128, 128)
    dets = postprocess(out, PostprocessConfig(), [lb, lb])
    assert [len(d) for d in dets] == [0, 0]
    assert dets[0].masks.shape == (0, 100, 140)
    assert dets[0].boxes.shape == (0, 4) and dets[0].labels.dtype == torch.int64


def test_nms_per_level_then_across_levels():
    out = blank_output()
    box = torch.tensor([40.0, 40.0, 80.0, 80.0])
    place(out, level=1, anchor=0, row=7, col=7, box=box, label=1)
    place(out, level=1, anchor=1, row=7, col=7, box=box + 1, label=1)  # a duplicate on the same level
    place(out, level=2, anchor=0, row=3, col=3, box=box - 1, label=1)  # and one on another level
    place(out, level=3, anchor=0, row=0, col=0, box=torch.tensor([0.0, 0, 20, 20]), label=0)
    lb = LetterboxInfo.fit(128, 128, 128, 128)
    cfg = PostprocessConfig(score_threshold=0.5)
    boxes, scores, labels = selected(out, cfg)[0]
    assert len(boxes) == 2
    assert box_iou(boxes, boxes).fill_diagonal_(0).max() < 0.3
    (det,) = postprocess(out, cfg, [lb])
    assert len(det) == 2


def test_class_aware_nms_keeps_overlapping_boxes_of_other_classes():
    out = blank_output()
    box = torch.tensor([40.0, 40.0, 80.0, 80.0])
    place(out, level=1, anchor=0, row=7, col=7, box=box, label=1)
    place(out, level=1, anchor=1, row=7, col=7, box=box, label=2)
    agnostic = selected(out, PostprocessConfig(score_threshold=0.5))[0][0]
    aware = selected(out, PostprocessConfig(score_threshold=0.5, class_aware_nms=True))[0][0]
    assert (len(agnostic), len(aware)) == (1, 2)


def test_decode_inverts_encode():
    anchors = torch.tensor([[10.0, 20.0], [30.0, 15.0]])
    deltas = torch.randn(1, 2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.5
    boxes = decode_boxes(deltas, anchors, stride=8)
    idx = torch.tensor([(a, r, c) for a in range(2) for r in range(3) for c in range(4)])
    flat = boxes[0, idx[:, 0], idx[:, 1], idx[:, 2]]
    back = encode_boxes(flat, anchors[idx[:, 0]], idx[:, [2, 1]], stride=8)
    torch.testing.assert_close(back, deltas[0, idx[:, 0], idx[:, 1], idx[:, 2]], atol=1e-4, rtol=1e-4)


def test_decode_clamps_huge_size_deltas():
    deltas = torch.zeros(1, 1, 1, 1, 4)
    deltas[..., 2:] = 1000.0
    assert torch.isfinite(decode_boxes(deltas, torch.tensor([[10.0, 10.0]]), 8)).all()


def test_paste_masks_matches_box_region_and_threshold():
    probs = torch.zeros(1, 28, 28)
    probs[0, :, :14] = 1.0  # left half of the box
    masks = paste_masks(probs, torch.tensor([[10.0, 20.0, 50.0, 40.0]]), 60, 80)
    assert masks.shape == (1, 60, 80)
    assert masks[0, 20:40, 10:30].all()
    assert masks.sum().item() == 20 * 20


def test_pasted_masks_stay_inside_their_rectangles_and_encode_as_the_full_masks():
    from yolovis.io.draw import draw_overlay
    from yolovis.model.detections import Detections
    from yolovis.track.mask_iou import encode_masks

    torch.manual_seed(0)
    probs = torch.rand(5, 28, 28)
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0], [-5.0, -3.0, 30.0, 90.0], [70.0, 50.0, 95.0, 70.0],
                          [3.0, 3.0, 3.0, 9.0], [0.0, 0.0, 80.0, 60.0]])  # fmt: skip
    masks, rects = paste_masks(probs, boxes, 60, 80, with_rects=True)
    assert torch.equal(masks, paste_masks(probs, boxes, 60, 80))
    for mask, (x0, y0, x1, y1) in zip(masks, rects.tolist(), strict=True):
        inside = torch.zeros_like(mask)
        inside[y0:y1, x0:x1] = True
        assert not (mask & ~inside).any()
    assert rects[3].tolist() == [0, 0, 0, 0] and not masks[3].any()  # an empty box: no mask, no rectangle
    assert encode_masks(masks, rects) == encode_masks(masks)
    assert encode_masks(masks, rects, [4, 1]) == encode_masks(masks[[4, 1]])
    det = Detections(boxes.clamp(0, 80), torch.rand(5), torch.zeros(5, dtype=torch.long), masks, mask_rects=rects)
    frame = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    ids = [1, 2, -1, 4, 5]
    whole = Detections(det.boxes, det.scores, det.labels, det.masks)  # no rectangles: the frame is scanned
    np.testing.assert_array_equal(draw_overlay(frame, det, ids, ["a"]), draw_overlay(frame, whole, ids, ["a"]))


def test_decoding_chosen_cells_gives_the_same_bits_as_decoding_all():
    from yolovis.model.anchors import decode_selected

    torch.manual_seed(0)
    deltas, anchors = torch.randn(2, 6, 13, 17, 4) * 3, torch.rand(6, 2) * 50 + 1
    every = decode_boxes(deltas, anchors, 8).flatten(1, 3)  # (2, 6*13*17, 4)
    chosen = torch.randperm(6 * 13 * 17)[:500]
    anchor, cell = chosen // (13 * 17), chosen % (13 * 17)
    cell_xy = torch.stack((cell % 17, cell // 17), dim=1)
    assert torch.equal(decode_selected(deltas.flatten(1, 3)[1, chosen], anchors[anchor], cell_xy, 8), every[1, chosen])


def test_paste_grid_in_numpy_is_bit_identical_to_torchs():
    """paste_masks builds its sampling grid in numpy; torch's float32 arithmetic gives the same bits."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(500):
        x0 = float(torch.rand(1, generator=gen)) * 1000 - 100
        x1 = x0 + float(torch.rand(1, generator=gen)) * 400 + 0.01
        c0, c1 = max(0, int(x0)), int(-(-x1 // 1))
        if c1 <= c0:  # a box left of the frame: paste_masks skips it
            continue
        reference = ((torch.arange(c0, c1, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1).numpy()
        f32 = np.float32
        got = (np.arange(c0, c1, dtype=f32) + f32(0.5) - f32(x0)) / f32(x1 - x0) * f32(2) - f32(1)
        np.testing.assert_array_equal(got.view(np.int32), reference.view(np.int32))


def reference_selection(out: ModelOutput, cfg: PostprocessConfig) -> list:
    """The selection as SPEC §2 states it, without shortcuts: every anchor-cell decoded and scored (objectness x
    the largest class probability), thresholded, the top 1000 per level, NMS per level, NMS across levels."""
    from torchvision.ops import nms, remove_small_boxes

    results = []
    for b in range(out.predictions[0].shape[0]):
        level_boxes, level_scores, level_labels = [], [], []
        for pred, anchors, stride in zip(out.predictions, out.anchors, out.strides, strict=True):
            p = pred[b : b + 1].float()
            boxes = decode_boxes(p[..., :4], anchors, stride).reshape(-1, 4)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, W)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, H)
            class_prob, labels = p[..., 5:].softmax(-1).reshape(-1, K).max(-1)
            scores = p[..., 4].sigmoid().reshape(-1) * class_prob
            idx = (scores > cfg.score_threshold).nonzero().squeeze(1)
            if idx.numel() > 1000:
                idx = idx[scores[idx].topk(1000).indices]
            bx, sc, lb = boxes[idx], scores[idx], labels[idx]
            valid = remove_small_boxes(bx, 1.0)
            bx, sc, lb = bx[valid], sc[valid], lb[valid]
            keep = nms(bx, sc, cfg.nms_iou)[: cfg.max_per_level]
            level_boxes.append(bx[keep]), level_scores.append(sc[keep]), level_labels.append(lb[keep])
        bx, sc, lb = torch.cat(level_boxes), torch.cat(level_scores), torch.cat(level_labels)
        keep = nms(bx, sc, cfg.nms_iou)[: cfg.max_per_image]
        results.append((bx[keep], sc[keep], lb[keep]))
    return results


def test_selection_scores_classes_only_where_objectness_passes_with_the_same_bits():
    """The class softmax runs only on anchor-cells whose objectness passes the threshold (a score cannot exceed
    its objectness); the selection must be bit for bit the plain one, at thresholds that keep all, some or none."""
    torch.manual_seed(0)
    out = blank_output(batch=2)
    for p in out.predictions:
        p.normal_(0, 2)  # every cell a candidate at threshold 0, many at 0.05, few at 0.5
    for threshold in (0.0, 0.05, 0.3, 0.5, 0.99):
        cfg = PostprocessConfig(score_threshold=threshold, max_per_image=300)
        got, want = selected(out, cfg), reference_selection(out, cfg)
        assert sum(len(g[0]) for g in got) > 0 or threshold == 0.99
        for (gb, gs, gl), (wb, ws, wl) in zip(got, want, strict=True):
            assert torch.equal(gb, wb) and torch.equal(gs, ws) and torch.equal(gl, wl)
