"""The association head's colour histogram (`model.assoc_histogram`): HSV against the standard library's
colorsys, bins by hand, the mask's say, the embedding's two shares, and checkpoints from before it."""

import colorsys

import pytest
import torch

from yolovis.config import Config, ModelConfig
from yolovis.data.letterbox import LetterboxInfo
from yolovis.data.sample import FrameSample
from yolovis.model import build_model
from yolovis.model.assoc_head import AssociationHead, colour_histogram, colour_map, rgb_to_hsv


def test_rgb_to_hsv_matches_colorsys():
    torch.manual_seed(0)
    pixels = torch.rand(2, 3, 5, 5)
    pixels[0, :, 0, 0] = 0.5  # grey: no hue
    pixels[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])  # pure red, hue 0
    h, s, v = rgb_to_hsv(pixels)
    for n in range(2):
        for y in range(5):
            for x in range(5):
                want = colorsys.rgb_to_hsv(*pixels[n, :, y, x].tolist())
                got = (h[n, y, x].item(), s[n, y, x].item(), v[n, y, x].item())
                if want[1] > 0:  # a grey pixel's hue is arbitrary
                    assert min(abs(got[0] - want[0]), 1 - abs(got[0] - want[0])) == pytest.approx(0, abs=1e-5)
                assert got[1:] == pytest.approx(want[1:], abs=1e-5)


def test_a_pure_red_patch_by_hand():
    # Red: hue 0 lies between the first and last of 16 hue centres (1/32 from each: half to each); saturation
    # and value 1 lie 1/8 past the last of 4 centres (7/8): weight 1 - 4/8 = 0.5. Two equal bins, then the
    # square root and unit length: 1/sqrt(2) each.
    pixels = torch.zeros(1, 3, 4, 4)
    pixels[:, 0] = 1.0
    hist = colour_histogram(pixels, torch.ones(1, 4, 4)).view(16, 4, 4)
    want = torch.zeros(16, 4, 4)
    want[0, 3, 3] = want[15, 3, 3] = 0.5**0.5
    torch.testing.assert_close(hist, want)


def test_only_the_pixels_under_the_mask_count():
    pixels = torch.zeros(1, 3, 8, 8)
    pixels[:, 0, :, :4] = 1.0  # left half red
    pixels[:, 2, :, 4:] = 1.0  # right half blue
    mask = torch.zeros(1, 8, 8)
    mask[:, :, :4] = 1.0
    red_only = torch.zeros(1, 3, 8, 8)
    red_only[:, 0] = 1.0
    torch.testing.assert_close(colour_histogram(pixels, mask), colour_histogram(red_only, torch.ones(1, 8, 8)))


def _head(histogram: float) -> AssociationHead:
    torch.manual_seed(0)
    return AssociationHead(8, (4, 8), dim=16, channels=8, colour=True, histogram=histogram).eval()


def _inputs(colour: torch.Tensor) -> tuple:
    images = colour.view(1, 3, 1, 1).expand(1, 3, 64, 64).clone()
    embeddings = [torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(1)), torch.zeros(1, 8, 8, 8)]
    return embeddings, [torch.tensor([[8.0, 8.0, 40.0, 40.0]])], [colour_map(images), images], torch.ones(1, 28, 28)


def test_the_embedding_is_the_two_parts_weighted_by_their_shares():
    head = _head(0.8)
    a, b = _inputs(torch.tensor([1.0, 0.0, 0.0])), _inputs(torch.tensor([0.0, 0.3, 1.0]))
    with torch.no_grad():
        ea, eb = head(*a), head(*b)
        la, lb = head(*a, with_histogram=False), head(*b, with_histogram=False)
    assert ea.shape == (1, 16 + 256) and la.shape == (1, 16)
    assert ea.norm().item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(ea[:, :16], 0.2**0.5 * la)
    ha, hb = colour_histogram(a[2][1][:, :, 8:40, 8:40], a[3]), colour_histogram(b[2][1][:, :, 8:40, 8:40], b[3])
    cos = (ea * eb).sum().item()
    assert cos == pytest.approx(0.2 * (la * lb).sum().item() + 0.8 * (ha * hb).sum().item(), abs=1e-5)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        head.set_histogram(1.5)


def test_training_asks_for_the_learned_part_alone_and_inference_gets_both():
    model = build_model(ModelConfig(scale="tiny", num_classes=2, assoc_dim=16)).eval()
    assert model.assoc_head.histogram == ModelConfig().assoc_histogram == 0.8
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(images)
    assert out.assoc.shape[1] == 16 + 256

    target = FrameSample(None, torch.tensor([[4.0, 4.0, 40.0, 40.0]]), torch.tensor([0]),
                         torch.zeros(1, 64, 64, dtype=torch.uint8), torch.tensor([7]), 0, 0,
                         LetterboxInfo(64, 64, 64, 64, 1.0, 0.0, 0.0))  # fmt: skip
    with torch.no_grad():
        out = model(images, [target])
    assert out.assoc.shape[1] == 16


def test_a_checkpoint_from_before_the_histogram_loads_without_it_and_can_take_it_up(tmp_path):
    from yolovis.engine.checkpoint import load_model, save_inference_checkpoint

    cfg = Config()
    cfg.model = ModelConfig(scale="tiny", num_classes=2, assoc_dim=16)
    save_inference_checkpoint(tmp_path / "old.pt", config=cfg)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=False)
    del ckpt["config"]["model"]["assoc_histogram"]  # as written before the key existed
    torch.save(ckpt, tmp_path / "old.pt")
    model, config, _ = load_model(tmp_path / "old.pt")
    assert config.model.assoc_histogram == 0.0 and model.assoc_head.histogram == 0.0
    model.assoc_head.set_histogram(0.8)  # what `yolovis diagnose --set model.assoc_histogram=0.8` does
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).assoc.shape[1] == 16 + 256


def test_an_out_of_range_share_is_a_user_error():
    from yolovis.errors import UserError

    with pytest.raises(UserError, match="model.assoc_histogram"):
        build_model(ModelConfig(scale="tiny", num_classes=2, assoc_dim=16, assoc_histogram=-0.1))
