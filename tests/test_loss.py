import math

import pytest
import torch
import torch.nn.functional as F
from targets import frame_targets

from yolovis.config import CriterionConfig
from yolovis.loss.assign import NEGATIVE_IOU, POSITIVE_IOU, TOLERANCES, anchor_cell_boxes, assign_targets
from yolovis.loss.criterion import Criterion
from yolovis.loss.mask_targets import build_mask_targets
from yolovis.model.anchors import decode_boxes
from yolovis.model.detector import ModelOutput

STRIDES = (4, 8, 16, 32)
# One square anchor per level, 16 px at stride 4 up to 128 px at stride 32, on a 64x64 input.
ANCHORS = torch.tensor([[[16.0, 16.0]], [[32.0, 32.0]], [[64.0, 64.0]], [[128.0, 128.0]]])
GRIDS = [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_anchor_cells_are_centred_on_cells():
    boxes = anchor_cell_boxes(torch.tensor([[4.0, 2.0]]), 2, 3, stride=8)
    assert boxes.shape == (6, 4)
    torch.testing.assert_close(boxes[0], torch.tensor([2.0, 3.0, 6.0, 5.0]))  # centre (4, 4)
    torch.testing.assert_close(boxes[5], torch.tensor([18.0, 11.0, 22.0, 13.0]))  # row 1, col 2: centre (20, 12)


def test_thresholds_follow_the_level_tolerance():
    # A 16x16 box exactly on the stride-4 anchor of cell (row 3, col 3): IoU 1 there.
    gt = torch.tensor([[6.0, 6.0, 22.0, 22.0]])
    targets = assign_targets(gt, torch.tensor([1]), ANCHORS, GRIDS, STRIDES, force_best_match=False)
    t0 = targets[0]
    assert t0.positive[0, 3, 3]
    # Neighbour cell: the anchor shifted by 4 px has IoU 12*16/(2*256-192) = 0.6 > 0.4*0.6 -> positive.
    assert t0.positive[0, 3, 4]
    # Two cells away: IoU 8*16/(512-128) = 1/3 > 0.24 -> positive; three away: IoU 0.143 < 0.18 -> negative.
    assert t0.positive[0, 3, 5] and t0.negative[0, 3, 6]
    # At stride 32 (t = 1.2) the 128-px anchors overlap the box at IoU 256/16384 -> negative everywhere.
    assert not targets[3].positive.any() and targets[3].negative.all()
    # Ignored cells are neither positive nor negative: e.g. IoU between 0.3t and 0.4t.
    for k, t in enumerate(targets):
        iou_max = torch.zeros(t.positive.numel())
        from torchvision.ops import box_iou

        iou_max = box_iou(anchor_cell_boxes(ANCHORS[k], *GRIDS[k], STRIDES[k]), gt).max(1).values
        ignored = ~(t.positive | t.negative).flatten()
        band = (iou_max >= NEGATIVE_IOU * TOLERANCES[k]) & (iou_max <= POSITIVE_IOU * TOLERANCES[k])
        assert torch.equal(ignored, band)


def test_box_targets_decode_back_to_the_ground_truth():
    gt = torch.tensor([[10.0, 12.0, 30.0, 40.0], [33.0, 5.0, 60.0, 20.0]])
    targets = assign_targets(gt, torch.tensor([0, 2]), ANCHORS, GRIDS, STRIDES)
    for k, t in enumerate(targets):
        pred = torch.zeros(1, 1, *GRIDS[k], 4)
        pred[0][t.positive] = t.box_deltas
        decoded = decode_boxes(pred, ANCHORS[k], STRIDES[k])[0][t.positive]
        torch.testing.assert_close(decoded, gt[t.matched_gt[t.positive]], atol=1e-4, rtol=1e-4)


def test_force_best_match_gives_every_object_a_positive():
    tiny = torch.tensor([[40.0, 40.0, 42.0, 43.0]])  # far below every threshold
    without = assign_targets(tiny, torch.tensor([0]), ANCHORS, GRIDS, STRIDES, force_best_match=False)
    with_ = assign_targets(tiny, torch.tensor([0]), ANCHORS, GRIDS, STRIDES, force_best_match=True)
    assert sum(int(t.positive.sum()) for t in without) == 0
    assert sum(int(t.positive.sum()) for t in with_) == 1
    assert with_[0].positive[0, 10, 10]  # the cell holding the centre (41, 41.5) at stride 4


def test_two_tiny_objects_forced_onto_one_cell_leave_it_to_the_later_one():
    tiny = torch.tensor([[40.0, 40.0, 42.0, 43.0], [40.5, 40.0, 42.5, 43.0], [20.0, 20.0, 22.0, 22.0]])
    targets = assign_targets(tiny, torch.tensor([0, 1, 2]), ANCHORS, GRIDS, STRIDES, force_best_match=True)
    assert sum(int(t.positive.sum()) for t in targets) == 2  # the first two share a cell
    assert targets[0].positive[0, 10, 10] and targets[0].matched_gt[0, 10, 10] == 1
    assert targets[0].positive[0, 5, 5] and targets[0].matched_gt[0, 5, 5] == 2


def test_centroid_supervision_labels_one_cell_per_object_and_level():
    gt = torch.tensor([[6.0, 6.0, 22.0, 22.0]])
    pos = assign_targets(gt, torch.tensor([2]), ANCHORS, GRIDS, STRIDES, class_supervision="positives")
    cen = assign_targets(gt, torch.tensor([2]), ANCHORS, GRIDS, STRIDES, class_supervision="centroid")
    assert int(pos[0].class_cells.sum()) == int(pos[0].positive.sum()) > 1
    assert int(cen[0].class_cells.sum()) == 1 and cen[0].class_cells[0, 3, 3]  # centre (14, 14) -> cell (3, 3)
    assert cen[0].class_labels.tolist() == [2]


def test_empty_image_has_only_negatives():
    targets = assign_targets(torch.zeros((0, 4)), torch.zeros((0,), dtype=torch.long), ANCHORS, GRIDS, STRIDES)
    assert all(t.negative.all() and not t.positive.any() and len(t.box_deltas) == 0 for t in targets)


def fake_output(batch=2, k=3, requires_grad=True):
    preds = [torch.zeros(batch, 1, h, w, 5 + k, requires_grad=requires_grad) for h, w in GRIDS]
    return ModelOutput(preds, [], ANCHORS, STRIDES, [], [torch.zeros((0, 4))] * batch, torch.zeros((0, 28, 28)))


def targets(boxes: list[torch.Tensor], labels: list[torch.Tensor]) -> list:
    return [frame_targets(b, lab) for b, lab in zip(boxes, labels, strict=True)]


def test_losses_by_hand_with_zero_predictions():
    out = fake_output(batch=1)
    gt = [torch.tensor([[6.0, 6.0, 22.0, 22.0]])]
    crit = Criterion(CriterionConfig(balancing="none"), len(STRIDES))
    assigned = crit.assign(out, gt, [torch.tensor([1])])[0]
    total, log = crit(out, targets(gt, [torch.tensor([1])]))
    t0 = assigned[0]
    npos = int(t0.positive.sum())
    expected_box = F.smooth_l1_loss(torch.zeros_like(t0.box_deltas), t0.box_deltas, beta=1 / 9, reduction="sum") / npos
    # Zero logits: BCE = log 2 for every counted cell; CE over K = 3 classes = log 3.
    expected_obj = (int(t0.positive.sum()) + int(t0.negative.sum())) * math.log(2) / npos
    assert log["box_4"] == pytest.approx(float(expected_box), rel=1e-5)
    assert log["obj_4"] == pytest.approx(expected_obj, rel=1e-5)
    assert log["cls_4"] == pytest.approx(math.log(3), rel=1e-5)
    # Stride 32 has no positives: its box/cls losses are zero, and its objectness (4 negative cells) is divided by
    # the positives of the whole batch, like every level's (issue 11: it used to be divided by 1).
    assert log["box_32"] == 0 and log["cls_32"] == 0
    total_pos = sum(int(t.positive.sum()) for t in assigned)
    assert total_pos == npos  # here only stride 4 holds positives
    assert log["obj_32"] == pytest.approx(4 * math.log(2) / total_pos, rel=1e-5)
    assert total.item() == pytest.approx(sum(log[f"{n}_{s}"] for n in ("box", "obj", "cls") for s in STRIDES), rel=1e-5)


def test_no_ground_truth_still_carries_gradient():
    out = fake_output()
    empty = [torch.zeros((0, 4))] * 2
    labels = [torch.zeros((0,), dtype=torch.long)] * 2
    total, log = Criterion(CriterionConfig(), len(STRIDES))(out, targets(empty, labels))
    total.backward()
    assert log["box"] == 0 and log["cls"] == 0 and log["obj"] > 0
    assert all(p.grad is not None for p in out.predictions)


@pytest.mark.parametrize(("balancing", "shape"), [("per_level", (4, 3)), ("global", (1, 3))])
def test_balancing_weights_follow_eq1(balancing, shape):
    crit = Criterion(CriterionConfig(balancing=balancing), len(STRIDES))
    assert crit.level_weights.shape == shape
    with torch.no_grad():
        crit.level_weights.fill_(math.log(2.0))
        crit.mask_weight.fill_(0.0)
    out = fake_output(batch=1)
    gt, lab = [torch.tensor([[6.0, 6.0, 22.0, 22.0]])], [torch.tensor([1])]
    _, raw_log = Criterion(CriterionConfig(balancing="none"), len(STRIDES))(out, targets(gt, lab))
    total, log = crit(out, targets(gt, lab))
    raw_sum = sum(raw_log[f"{n}_{s}"] for n in ("box", "obj", "cls") for s in STRIDES)
    # 1/2 (exp(-w) L + w) summed: each of the weighted terms contributes w/2 = log(2)/2.
    expected = 0.5 * (raw_sum / 2 + shape[0] * shape[1] * math.log(2.0)) + 0.5 * raw_log["mask"]
    assert total.item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    # dL/dw = 1/2 (1 - exp(-w) L): non-zero, so the weights move.
    assert crit.level_weights.grad.abs().sum() > 0


def test_mask_targets_are_cut_from_the_matched_ground_truth():
    # (That the ground-truth boxes join the RoIs is the forward's job: test_model.py.)
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 16:48, 16:32] = 1  # left half of its box
    gt = torch.tensor([[16.0, 16.0, 48.0, 48.0]])
    proposals = torch.tensor([[16.0, 16.0, 48.0, 48.0], [0.0, 0.0, 10.0, 10.0]])
    rois = build_mask_targets([torch.cat((gt, proposals))], [gt], [masks])
    assert rois.targets.shape == (3, 28, 28)
    assert rois.matched.tolist() == [True, True, False]
    target = rois.targets[0]
    assert target.shape == (28, 28)
    # Inside the left half 1, right half 0; bilinear sampling blends only the border rows and columns.
    assert target[2:-2, 2:12].min() > 0.99 and target[:, 16:].max() < 0.01


def test_mask_targets_of_enlarged_rois_cover_what_the_mask_head_saw():
    # model.mask_roi_scale 2: the mask head sees each box twice as large about its centre, so the object that
    # fills the ground-truth box fills the middle half of the target; matching still uses the box itself.
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 16:48, 16:48] = 1
    gt = torch.tensor([[16.0, 16.0, 48.0, 48.0]])
    rois = build_mask_targets([gt], [gt], [masks], roi_scale=2.0)
    assert rois.matched.tolist() == [True]
    target = rois.targets[0]
    assert target[8:20, 8:20].min() > 0.99  # the box's area: 28 / 4 .. 3 x 28 / 4, less the blended border
    assert target[:6].max() < 0.01 and target[22:].max() < 0.01 and target[:, :6].max() < 0.01
    torch.testing.assert_close(target, target.flip(0).flip(1))  # centred
    same = build_mask_targets([gt], [gt], [masks], roi_scale=1.0).targets
    assert same[0, 1:-1, 1:-1].min() > 0.99  # at scale 1 the box is all object


def test_centroid_class_cell_has_the_box_target_of_the_same_object():
    # A and B, both 16 px, have their centres in the same stride-4 cell, whose anchor fits B better (IoU 0.78
    # against 0.62): its box target is B. A's class must not be learned there: it would pair A's class with
    # B's box (the landed code did, whenever A came after B in the ground truth).
    a, b = [8.0, 8.0, 24.0, 24.0], [11.0, 9.0, 27.0, 25.0]
    gt, labels = torch.tensor([b, a]), torch.tensor([2, 0])
    for t, stride, anchors in zip(assign_targets(gt, labels, ANCHORS, GRIDS, STRIDES, class_supervision="centroid"),
                                  STRIDES, ANCHORS, strict=True):  # fmt: skip
        assert t.positive[t.class_cells].all()  # classes only on positive cells
        assert torch.equal(t.class_labels, labels[t.matched_gt[t.class_cells]])
        # The box target of each class cell is the box of the object whose class it learns.
        positives = t.positive.nonzero()
        for a_idx, row, col in t.class_cells.nonzero().tolist():
            k = int(((positives == torch.tensor([a_idx, row, col])).all(1)).nonzero()[0, 0])
            decoded = decode_boxes(t.box_deltas[k].view(1, 1, 1, 1, 4), anchors[a_idx : a_idx + 1], stride)
            centre = (torch.tensor([col, row]) + 0.5) * stride - torch.tensor([0.5, 0.5]) * stride
            box = decoded.view(4) + torch.cat([centre, centre])
            torch.testing.assert_close(box, gt[t.matched_gt[a_idx, row, col]], atol=1e-3, rtol=0)
