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
        for (_, anchor, view0, pair0), (_, partner, view, pair) in zip(batch[0::2], batch[1::2], strict=True):
            assert partner in partners[anchor] and (view0, view) == (0, 1) and pair0 == pair == anchor
    assert batches == epoch_batches(len(ds), 4, seed=0, epoch=1, partners=partners)  # seeded: resumable
    seeded = SeededFrames(ds, 0)
    assert seeded[batches[0][1]].video_id == seeded[batches[0][0]].video_id


def test_the_two_frames_of_a_pair_share_their_colour_jitter(tmp_path):
    # Lighting changes little over a few frames of a video; jittered apart, the pair would teach the association
    # head that colour does not identify an object. With only HSV jitter on, a frame paired with itself comes
    # back pixel for pixel, and under another pair's draw it does not; geometry stays each view's own draw.
    from yolovis.data.augment import AugmentConfig

    generate(tmp_path, SynthConfig(videos=2, frames=4, classes=2, width=96, height=64, seed=3))
    hsv_only = AugmentConfig(flip=0.0, scale=0.0, translate=0.0, mosaic=0.0, hsv_h=0.1, hsv_s=0.7, hsv_v=0.4)
    ds = SeededFrames(YTVISDataset(tmp_path / "instances.json", img_size=(64, 96), augment=hsv_only), seed=0)
    anchor, partner, other = ds[(1, 2, 0, 2)].image, ds[(1, 2, 1, 2)].image, ds[(1, 2, 1, 5)].image
    assert torch.equal(anchor, partner)
    assert not torch.equal(anchor, other)
    unpaired = [ds[(1, 2)].image, ds[(1, 2, 1)].image]  # outside pairs, each view draws its own gains
    assert not torch.equal(*unpaired)
    geometric = AugmentConfig(flip=0.0, scale=0.3, translate=0.2, mosaic=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)
    ds = SeededFrames(YTVISDataset(tmp_path / "instances.json", img_size=(64, 96), augment=geometric), seed=0)
    assert not torch.equal(ds[(1, 2, 0, 2)].image, ds[(1, 2, 1, 2)].image)


def test_masked_mean_averages_under_the_mask_by_hand():
    from yolovis.model.assoc_head import masked_mean

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    weights = torch.zeros(1, 8, 8)
    weights[0, :4, :4] = 1.0  # the top-left quarter: cells 0, 1, 4, 5 of the 4x4 features
    assert masked_mean(x, weights).item() == pytest.approx((0 + 1 + 4 + 5) / 4, abs=0.02)  # the 1e-3 floor
    assert masked_mean(x, torch.zeros(1, 8, 8)).item() == pytest.approx(x.mean().item())  # empty: the box


def test_the_colour_head_tells_apart_objects_that_differ_only_in_colour():
    # Same embedding maps, same box, same mask: only the image's colour under the mask differs. The learned part
    # alone (the histogram has its own tests).
    model = build_model(ModelConfig(scale="tiny", num_classes=2, assoc_dim=16)).eval()
    head = model.assoc_head
    embeddings = [torch.zeros(1, 32, 64 // s, 64 // s) for s in model.strides]
    box = [torch.tensor([[8.0, 8.0, 40.0, 40.0]])]
    mask = torch.ones(1, 28, 28)
    red, blue = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    red[:, 0], blue[:, 2] = 1.0, 1.0
    with torch.no_grad():
        a = head(embeddings, box, [F.avg_pool2d(red, 4)], mask, with_histogram=False)
        b = head(embeddings, box, [F.avg_pool2d(blue, 4)], mask, with_histogram=False)
        a2 = head(embeddings, box, [F.avg_pool2d(red, 4)], mask, with_histogram=False)
    assert torch.equal(a, a2) and not torch.allclose(a, b, atol=1e-3)
    assert a.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_a_checkpoint_from_before_the_colour_head_loads_as_it_was_trained(tmp_path):
    from yolovis.config import Config
    from yolovis.engine.checkpoint import load_model, save_inference_checkpoint

    cfg = Config()
    cfg.model = ModelConfig(scale="tiny", num_classes=2, assoc_dim=16, assoc_colour=False)
    save_inference_checkpoint(tmp_path / "old.pt", config=cfg)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=False)
    del ckpt["config"]["model"]["assoc_colour"]  # as written before the key existed
    torch.save(ckpt, tmp_path / "old.pt")
    model, config, _ = load_model(tmp_path / "old.pt")
    assert config.model.assoc_colour is False and not model.assoc_head.colour
    assert ModelConfig().assoc_colour is True  # new models get the colour path
