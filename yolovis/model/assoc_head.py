"""The association head: one appearance embedding per RoI, for the tracker to tell objects apart and find them
again after an occlusion (beyond the report, `model.assoc_dim`; 0 leaves it out).

It pools every RoI from all four embedding maps, as the mask head does (RoIAlign, a conv per level, element-wise
max across levels: PANet's adaptive feature pooling), then two convs and a linear layer to D dimensions,
L2-normalised: the cosine of two embeddings is their similarity. Trained with a contrastive loss on RoIs of the
same instance in other frames of the batch (`loss/association.py`), as MaskTrack R-CNN's tracking head or QDTrack
learn theirs.

With `colour` (`model.assoc_colour`, the default for new models) it also sees the frame itself: the image
averaged to stride 4 (`DenseOutput.colours`), RoIAligned, each pixel's colour mapped by two 1x1 convs (a learned,
soft colour histogram), and both paths are averaged under the RoI's predicted mask rather than over its box.
Why: the embedding maps are trained for masks and keep little colour, and the box's background is not the
object. Trained on the embedding maps alone the contrastive loss stayed at chance on the hard synthetic set, while
a colour histogram under the mask re-identified instances 95-99 % of the time (docs/tracking.md).

With `histogram` > 0 (`model.assoc_histogram`, 0.8 for new models) the embedding also holds a fixed colour
histogram under the predicted mask (16 x 4 x 4 soft HSV bins of the frame's own pixels, square-rooted): the
cosine distance of two embeddings is then (1 - histogram) x the learned part's + histogram x the histogram's.
Why: on the hard synthetic set the learned part, trained 1200 steps, still put 28 % of the pairs of same-class
instances within 0.05 of each other where the histogram puts 2 %, and with it (and the tracker's defaults for
it) the tracker's video AP50 on three hard sets rose from 0.26 to 0.58 (docs/tracking.md). It has nothing to
learn, so the loss sees the learned part alone and a checkpoint trained without it can use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from yolovis.model.mask_head import conv_gn_relu

ASSOC_ROI_SIZE = 7
COLOUR_STRIDE = 4  # the stride of `DenseOutput.colours`: the image averaged over 4x4 pixels
COLOUR_ROI_SIZE = 14
COLOUR_CHANNELS = 32
HISTOGRAM_BINS = (16, 4, 4)  # hue (circular), saturation, value
HISTOGRAM_DIM = HISTOGRAM_BINS[0] * HISTOGRAM_BINS[1] * HISTOGRAM_BINS[2]  # 256
HISTOGRAM_ROI_SIZE = 28  # pixels sampled per RoI side, from the full-resolution frame


def colour_map(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [0, 1] -> (B, 3, H/4, W/4): what the colour path pools from."""
    return F.avg_pool2d(images, COLOUR_STRIDE)


def masked_mean(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) features, (N, S', S') mask probabilities -> (N, C): the mean under the mask (over the box
    where the mask is empty)."""
    w = F.adaptive_avg_pool2d(weights[:, None], x.shape[-2:])  # (N, 1, S, S)
    w = w + 1e-3  # an empty mask falls back to the box's mean
    return (x * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3))


def rgb_to_hsv(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) RGB in [0, 1] -> hue in [0, 1), saturation and value in [0, 1], each (N, S, S)."""
    r, g, b = pixels.unbind(1)
    value, _ = pixels.max(1)
    chroma = value - pixels.min(1).values
    saturation = chroma / value.clamp(min=1e-6)
    c = chroma.clamp(min=1e-6)  # grey pixels: any hue, weightless after the saturation bins anyway
    hue = torch.where(value == r, (g - b) / c, torch.where(value == g, 2 + (b - r) / c, 4 + (r - g) / c))
    return (hue / 6) % 1.0, saturation, value


def soft_bins(x: torch.Tensor, n: int, circular: bool = False) -> torch.Tensor:
    """(N, S, S) values in [0, 1] -> (N, n, S, S): linear weights on the two nearest of n bin centres, so that a
    colour on a bin edge does not flip between bins from frame to frame."""
    centres = (torch.arange(n, dtype=x.dtype, device=x.device) + 0.5) / n
    d = (x[:, None] - centres[None, :, None, None]).abs()
    if circular:
        d = torch.minimum(d, 1 - d)
    return (1 - d * n).clamp(min=0)


def colour_histogram(pixels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) RGB pixels, (N, S', S') mask probabilities -> (N, HISTOGRAM_DIM): the square-rooted HSV histogram
    of the pixels under the mask, unit length (the cosine of two is the Bhattacharyya coefficient)."""
    h, s, v = rgb_to_hsv(pixels.float())
    bins_h, bins_s, bins_v = HISTOGRAM_BINS
    w = F.adaptive_avg_pool2d(weights.float()[:, None], pixels.shape[-2:])[:, 0]  # (N, S, S)
    wh = soft_bins(h, bins_h, circular=True) * w[:, None]  # (N, 16, S, S)
    hist = torch.einsum("nhxy,nsxy,nvxy->nhsv", wh, soft_bins(s, bins_s), soft_bins(v, bins_v)).flatten(1)
    return F.normalize(hist.clamp(min=0).sqrt(), dim=1)  # (N, 256)


class AssociationHead(nn.Module):
    """forward(embeddings [B, E, H_k, W_k] x L, rois list of (N_b, 4) xyxy input-pixel boxes, colours [(B, 3,
    H/4, W/4), and with `histogram` the images (B, 3, H, W)] and mask_logits (sum N_b, M, M) of the same RoIs (both
    read with `colour` only), with_histogram) -> (sum N_b, D), or (sum N_b, D + 256) with the histogram."""

    def __init__(
        self,
        embed_dim: int,
        strides: tuple[int, ...],
        dim: int = 64,
        channels: int = 64,
        colour: bool = False,
        histogram: float = 0.0,
    ) -> None:
        super().__init__()
        self.strides = strides
        self.dim = dim
        self.colour = colour
        self.set_histogram(histogram)
        self.level_convs = nn.ModuleList(conv_gn_relu(embed_dim, channels) for _ in strides)
        self.fused = nn.Sequential(conv_gn_relu(channels, channels), conv_gn_relu(channels, channels))
        if colour:
            # 1x1 convs without normalisation: a norm over the RoI would take away the absolute colour.
            self.colour_convs = nn.Sequential(
                nn.Conv2d(3, COLOUR_CHANNELS, 1), nn.ReLU(inplace=True),
                nn.Conv2d(COLOUR_CHANNELS, COLOUR_CHANNELS, 1), nn.ReLU(inplace=True),
            )  # fmt: skip
        self.project = nn.Linear(channels + (COLOUR_CHANNELS if colour else 0), dim)

    def set_histogram(self, share: float) -> None:
        """The histogram's share of the appearance distance; it has no weights, so it may change after training."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"model.assoc_histogram must be in [0, 1] (the histogram's share), not {share}")
        if share > 0 and not self.colour:
            raise ValueError(
                "model.assoc_histogram needs the colour path (model.assoc_colour: the masks it pools under)"
            )
        self.histogram = share

    def forward(
        self,
        embeddings: list[torch.Tensor],
        rois: list[torch.Tensor],
        colours: list[torch.Tensor] | None = None,
        mask_logits: torch.Tensor | None = None,
        with_histogram: bool = True,
    ) -> torch.Tensor:
        """`with_histogram`: append the histogram (when the head has one); the loss, which trains the learned
        part alone, asks for it without."""
        boxes = [r.to(embeddings[0].dtype) for r in rois]
        histogram = self.histogram if with_histogram else 0.0
        if sum(int(b.shape[0]) for b in boxes) == 0:
            width = self.dim + (HISTOGRAM_DIM if histogram > 0 else 0)
            return embeddings[0].sum()[None, None].expand(0, width) * 0  # empty, still in the graph
        fused = None
        for emb, stride, conv in zip(embeddings, self.strides, self.level_convs, strict=True):
            pooled = roi_align(emb, boxes, ASSOC_ROI_SIZE, spatial_scale=1.0 / stride, sampling_ratio=2, aligned=True)
            level = conv(pooled)  # (N, C, 7, 7)
            fused = level if fused is None else torch.maximum(fused, level)
        if not self.colour:
            x = self.fused(fused).mean(dim=(2, 3))  # (N, C)
            return F.normalize(self.project(x), dim=1)  # (N, D), unit length
        if not colours or mask_logits is None:
            raise ValueError("an association head with colour needs the colour map and the RoIs' mask logits")
        # The mask only says where to look: the association loss must not reshape the masks.
        weights = torch.sigmoid(mask_logits.detach().float()).to(fused.dtype)  # (N, M, M)
        x = masked_mean(self.fused(fused), weights)  # (N, C)
        pixels = roi_align(colours[0].to(fused.dtype), boxes, COLOUR_ROI_SIZE, spatial_scale=1.0 / COLOUR_STRIDE,
                           sampling_ratio=2, aligned=True)  # fmt: skip
        c = masked_mean(self.colour_convs(pixels), weights)  # (N, 32)
        learned = F.normalize(self.project(torch.cat((x, c), dim=1)), dim=1)  # (N, D), unit length
        if histogram == 0:
            return learned
        if len(colours) < 2:
            raise ValueError("an association head with the colour histogram needs the images (colours[1])")
        pixels = roi_align(colours[1].to(fused.dtype), boxes, HISTOGRAM_ROI_SIZE, spatial_scale=1.0,
                           sampling_ratio=1, aligned=True)  # fmt: skip
        hist = colour_histogram(pixels, weights)  # (N, 256)
        # Both parts unit length: the cosine of two embeddings is the two cosines weighted by these shares.
        return torch.cat(((1 - histogram) ** 0.5 * learned, histogram**0.5 * hist.to(learned.dtype)), dim=1)
