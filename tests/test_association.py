"""The association head, its contrastive loss, and the sampler that pairs frames of one video."""

import math

import pytest
import torch
import torch.nn.functional as F
from targets import frame_targets, without_proposals

from yolovis.config import CriterionConfig, ModelConfig
from yolovis.data.sampling import SeededFrames, epoch_batches
from yolovis.data.synth import SynthConfig, generate
from yolovis.data.ytvis import YTVISDataset
from yolovis.loss.association import TEMPERATURE, association_loss
from yolovis.loss.criterion import Criterion
from yolovis.model import build_model


def test_association_loss_by_hand():
    # Instances 5 and 6 in images 0 and 1. Each RoI has one positive (the same instance in the other image)
    # and two negatives; no RoI is compared with itself.
    e = torch.tensor([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    ids, images = torch.tensor([5, 6, 5, 6]), torch.tensor([0, 0, 1, 1])
    t = TEMPERATURE  # each RoI: positive cosine 1, two negatives at cosine 0.6
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * math.exp(0.6 / t)))
    assert association_loss(e, ids, images).item() == pytest.approx(expected, rel=1e-5)
    swapped = e[[0, 1, 3, 2]]  # the second image's embeddings exchanged: every positive is now orthogonal
    assert association_loss(swapped, ids, images).item() > 10 * expected


def test_association_loss_without_positives_is_a_zero_with_gradient():
    e = F.normalize(torch.randn(4, 8), dim=1).requires_grad_()
    loss = association_loss(e, torch.tensor([1, 2, 3, -1]), torch.tensor([0, 0, 1, 1]))
    assert loss.item() == 0.0
    loss.backward()
    assert e.grad is not None
    # Two RoIs of one instance in the same image are one view, not a pair.
    assert association_loss(e.detach(), torch.tensor([1, 1, 2, 3]), torch.tensor([0, 0, 1, 1])).item() == 0.0


def test_association_head_gives_unit_embeddings_per_roi():
    model = without_proposals(build_model(ModelConfig(scale="tiny", num_classes=3, assoc_dim=16)))
    rois = [torch.tensor([[4.0, 4.0, 40.0, 30.0], [10.0, 12.0, 60.0, 60.0]]), torch.zeros((0, 4))]
    out = model(torch.rand(2, 3, 64, 64), [frame_targets(r) for r in rois])
    assert out.assoc.shape == (2, 16)
    torch.testing.assert_close(out.assoc.norm(dim=1), torch.ones(2))
    out.assoc.sum().backward()
    assert all(p.grad is not None for p in model.assoc_head.parameters())
    assert build_model(ModelConfig(scale="tiny", num_classes=3)).assoc_head is None  # assoc_dim 0: no head


def test_criterion_adds_the_association_loss_with_its_own_weight():
    model = without_proposals(build_model(ModelConfig(scale="tiny", num_classes=2, assoc_dim=8)))
    box = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    masks = torch.zeros((1, 64, 64), dtype=torch.uint8)
    masks[0, 8:40, 8:40] = 1
    targets = [frame_targets(box, torch.tensor([1]), masks), frame_targets(box + 4, torch.tensor([1]), masks)]
    for t in targets:
        t.instance_ids = torch.tensor([42])  # one instance in two frames: a positive pair
    criterion = Criterion(CriterionConfig(), 4, association=True)
    loss, log = criterion(model(torch.rand(2, 3, 64, 64), targets), targets)
    assert "assoc" in log and "w_assoc" in log
    # With one instance seen twice and nothing else, its only candidate is its positive: the loss is 0.
    assert log["assoc"] == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert criterion.assoc_weight.grad is not None


def test_sampler_pairs_each_frame_with_another_of_its_video(tmp_path):
    generate(tmp_path, SynthConfig(videos=3, frames=6, classes=2, width=96, height=64, seed=2))
    ds = YTVISDataset(tmp_path / "instances.json", img_size=(64, 96), augment=None)
    partners = ds.partner_candidates(2)
    video_of = [pos for pos, _ in ds._items]
    frame_of = [frames[0] for _, frames in ds._items]
    assert partners[0] == [1, 2]  # frame 0 of video 0: frames 1 and 2
    assert all(video_of[j] == video_of[i] and 0 < abs(frame_of[j] - frame_of[i]) <= 2
               for i, cands in enumerate(partners) for j in cands)  # fmt: skip
    batches = epoch_batches(len(ds), 4, seed=0, epoch=1, partners=partners)
    assert len(batches) == len(ds) // 4 and all(len(b) == 4 for b in batches)
    for batch in batches:
        for (_, anchor), (_, partner, view) in zip(batch[0::2], batch[1::2], strict=True):
            assert partner in partners[anchor] and view == 1
    assert batches == epoch_batches(len(ds), 4, seed=0, epoch=1, partners=partners)  # seeded: resumable
    seeded = SeededFrames(ds, 0)
    assert seeded[batches[0][1]].video_id == seeded[batches[0][0]].video_id
