"""Augmentations keep image, masks and boxes consistent. The frames of `make_dataset` are flat colours, one per
track, so after any geometry the pixels under a mask must still carry that track's colour, and the boxes must
be where the applied matrix sends the original ones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from test_data import BACKGROUND, TRACKS, make_dataset

from yolovis.data import AugmentConfig, YTVISDataset, collate_frames
from yolovis.data.augment import augment_frame, mosaic, random_affine, warp_frame
from yolovis.data.letterbox import PAD_VALUE
from yolovis.data.masks import masks_to_boxes

GEOMETRY = AugmentConfig(flip=0.5, hsv_h=0, hsv_s=0, hsv_v=0, scale=0.5, translate=0.2, mosaic=0)


def colour_of(track_id: int) -> np.ndarray:
    return np.array(TRACKS[int(track_id)][2])


def assert_masks_on_their_colours(image: np.ndarray, masks: np.ndarray, ids: np.ndarray):
    """Drawn back on the image, each mask sits on its track's colour. Interpolation blends a one-pixel rim (and
    a mask interpolated twice, as in mosaic, may round that rim either way), so: the mask's interior (eroded by
    one pixel) is the track's colour, and no pixel of that colour lies outside the mask grown by one pixel."""
    refs = np.array([colour_of(t) for t in TRACKS] + [BACKGROUND, (PAD_VALUE,) * 3])  # (R, 3)
    nearest = np.abs(image.astype(int)[:, :, None, :] - refs).sum(axis=3).argmin(axis=2)  # (H, W) ref index
    kernel = np.ones((3, 3), np.uint8)
    for tid in np.unique(ids):
        own = nearest == list(TRACKS).index(int(tid))
        union = masks[ids == tid].max(axis=0)
        inner = cv2.erode(union, kernel).astype(bool)
        assert own[inner].mean() >= 0.99, (tid, own[inner].mean())
        assert not (own & ~cv2.dilate(union, kernel).astype(bool)).any(), tid


def assert_masks_fill_their_boxes(masks: np.ndarray, boxes: np.ndarray):
    """Each mask lies inside its box and touches all four sides (the box is the mask's tight box)."""
    for m, (x0, y0, x1, y1) in zip(masks, boxes.astype(int), strict=True):
        ys, xs = np.nonzero(m)
        assert xs.min() == x0 and xs.max() == x1 - 1 and ys.min() == y0 and ys.max() == y1 - 1
        assert x1 - x0 >= 2 and y1 - y0 >= 2


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]], axis=1)
    pts = corners @ matrix[:2, :2].T + matrix[:2, 2]
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def test_flip_is_exact(tmp_path):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 96))
    frame = ds.load_frame(ds.annotations.video(7), 0)
    out = augment_frame(
        frame,
        AugmentConfig(flip=1.0, hsv_h=0, hsv_s=0, hsv_v=0, scale=0, translate=0, mosaic=0),
        np.random.default_rng(0),
    )
    assert np.array_equal(out.image, frame.image[:, ::-1])
    assert np.array_equal(out.masks, frame.masks[:, :, ::-1])
    boxes, flipped = frame.boxes, out.boxes
    assert np.allclose(flipped[:, [0, 2]], 96 - boxes[:, [2, 0]]) and np.allclose(flipped[:, [1, 3]], boxes[:, [1, 3]])


@pytest.mark.parametrize("seed", range(6))
def test_affine_moves_masks_boxes_and_image_together(tmp_path, seed):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(96, 128))  # upscaled: letterbox resizes the masks too
    frame = ds.load_frame(ds.annotations.video(7), 0)
    assert_masks_on_their_colours(frame.image, frame.masks, frame.instance_ids)
    before = frame.boxes
    out = augment_frame(frame, GEOMETRY, np.random.default_rng(seed))
    assert_masks_on_their_colours(out.image, out.masks, out.instance_ids)
    assert_masks_fill_their_boxes(out.masks, out.boxes)
    expected = transform_boxes(before, out.matrix)
    for k, tid in enumerate(frame.instance_ids):
        if tid not in out.instance_ids:
            # dropped: the matrix must have pushed it (nearly) out of the frame
            e = expected[k]
            assert min(e[2], 128) - max(e[0], 0) < 2 or min(e[3], 96) - max(e[1], 0) < 2
            continue
        e = np.clip(expected[k], 0, [128, 96, 128, 96])
        got = out.boxes[list(out.instance_ids).index(tid)]
        assert np.abs(got - e).max() <= 1.5, (got, e)


def test_instances_pushed_out_are_dropped(tmp_path):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 64))
    frame = ds.load_frame(ds.annotations.video(7), 0)
    shift = np.array([[1, 0, -60], [0, 1, 0], [0, 0, 1]], dtype=np.float64)  # 60 px left: only x >= 60 stays
    out = warp_frame(frame, shift, (64, 64))
    assert out.masks.shape[0] == 0 and out.labels.shape == (0,)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_keeps_every_mask_on_its_own_pixels(tmp_path, seed):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 96))
    frames = [ds.load_frame(ds.annotations.video(v), t) for v, t in [(7, 0), (3, 0), (7, 2), (7, 1)]]
    cfg = AugmentConfig(flip=0.5, hsv_h=0, hsv_s=0, hsv_v=0, scale=0.3, translate=0.1, mosaic=1.0)
    out = mosaic(frames, cfg, np.random.default_rng(seed))
    assert out.image.shape == (64, 96, 3) and out.masks.shape[1:] == (64, 96)
    assert_masks_on_their_colours(out.image, out.masks, out.instance_ids)
    assert_masks_fill_their_boxes(out.masks, out.boxes)


def test_hsv_jitter_changes_colours_not_geometry(tmp_path):
    ann = make_dataset(tmp_path)
    plain = YTVISDataset(ann, img_size=(64, 64))
    jitter = YTVISDataset(ann, img_size=(64, 64), augment=AugmentConfig(flip=0, scale=0, translate=0, mosaic=0))
    torch.manual_seed(0)
    a, b = plain[0], jitter[0]
    assert torch.equal(a.masks, b.masks) and torch.equal(a.boxes, b.boxes) and a.letterbox == b.letterbox
    assert not torch.equal(a.image, b.image)


def test_dataset_with_full_augmentation_batches(tmp_path):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 64), augment=AugmentConfig(mosaic=0.5))
    torch.manual_seed(0)
    samples = [ds[i % len(ds)] for i in range(12)]
    images, targets = collate_frames(samples)
    assert images.shape == (12, 3, 64, 64) and images.dtype == torch.uint8
    for t in targets:
        n = len(t)
        assert t.boxes.shape == (n, 4) and t.masks.shape == (n, 64, 64) and t.labels.shape == (n,)
        assert t.masks.dtype == torch.uint8 and t.boxes.dtype == torch.float32 and t.instance_ids.dtype == torch.int64
        assert_masks_fill_their_boxes(t.masks.numpy(), t.boxes.numpy())
        assert t.letterbox.scale == 1.0 and t.letterbox.orig_h == 64  # identity after geometric augmentation
    assert AugmentConfig.off().geometric is False


def test_pairs_share_one_augmentation(tmp_path):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 64), augment=GEOMETRY, mode="pairs")
    torch.manual_seed(3)
    for i in range(len(ds)):
        f0, f1 = ds[i]
        if f0.video_id != 7:
            continue
        # track 2 does not move in video 7: under one shared transform its masks stay identical
        m0 = f0.masks[f0.instance_ids == 2]
        m1 = f1.masks[f1.instance_ids == 2]
        assert m0.shape == m1.shape and torch.equal(m0, m1)


def test_random_affine_maps_centre_to_centre_without_shift():
    cfg = AugmentConfig(flip=0, scale=0.5, translate=0, mosaic=0)
    m = random_affine((100, 200), (50, 60), cfg, np.random.default_rng(0))
    assert np.allclose(m @ [100, 50, 1], [30, 25, 1])
    assert masks_to_boxes(np.zeros((1, 4, 4), np.uint8)).tolist() == [[0, 0, 0, 0]]
