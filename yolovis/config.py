"""Configuration: dataclasses with defaults in code, YAML files and `key=value` strings to override them.

Every section is a dataclass; `Config` nests them. Merging and type checking are OmegaConf's structured configs
(the library Hydra is built on); its errors are turned into one line that names the key. The resolved config is
saved (as a plain dict) in every checkpoint and output folder, so a run can always be reproduced from what it
wrote; keys renamed since (RENAMED_KEYS) are still read, with a warning.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from yolovis.data.augment import AugmentConfig
from yolovis.errors import UserError
from yolovis.fileio import atomic_write_text

T = TypeVar("T")

# Default anchors, in pixels of a 416 x 416 input: YOLOv4's COCO anchors extended to 4 levels x 6 anchors
# by log-spacing between 4 and 416 px. `yolovis anchors` fits dataset-specific ones (IoU k-means).
DEFAULT_ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((6, 8), (10, 6), (9, 14), (16, 11), (14, 24), (24, 17)),  # stride 4
    ((21, 36), (36, 26), (32, 56), (56, 40), (48, 88), (88, 60)),  # stride 8
    ((72, 128), (128, 88), (110, 190), (190, 130), (150, 270), (270, 180)),  # stride 16
    ((230, 330), (330, 230), (300, 400), (400, 300), (360, 360), (410, 410)),  # stride 32
)


@dataclass
class ModelConfig:
    scale: str = "tiny"  # full | small | tiny
    num_classes: int = 40
    anchors: list[list[list[float]]] = field(default_factory=lambda: [list(map(list, a)) for a in DEFAULT_ANCHORS])
    anchor_img_size: int = 416  # the input size the anchors were fitted for; they scale with the input
    embed_dim: int | None = None  # embedding channels E; None: the scale's default (S/2 = 208 for full)
    mask_channels: int | None = None  # mask-head conv width; None: the scale's default
    mask_fc: bool = False  # PANet's fully-connected mask branch (the original had it: 19.7 M parameters)
    # The mask head sees each box enlarged this much about its centre (beyond the report): its mask may then
    # reach past a box that cut the object short. 1 = the box itself, as the report.
    mask_roi_scale: float = 1.0
    assoc_dim: int = 0  # the association head's embedding size (appearance for the tracker); 0 = no head
    # The association head also sees the frame's colours under each predicted mask (`model/assoc_head.py`);
    # checkpoints from before it read as false (the head pooled the embedding maps alone).
    assoc_colour: bool = True
    # Its embedding also holds a colour histogram under each mask, this share of the appearance distance (0 =
    # none; with `assoc_colour` only). It has no weights, so a checkpoint trained without it can use it (`--set`);
    # checkpoints from before it read as 0.
    assoc_histogram: float = 0.8
    # Training RoIs of the mask head: the ground-truth boxes plus the network's own boxes, kept few and loose.
    train_proposals: int = 8  # predicted boxes per image
    train_proposal_score: float = 0.05
    train_proposal_nms: float = 0.7


@dataclass
class PostprocessConfig:
    score_threshold: float = 0.05
    nms_iou: float = 0.3  # the original's
    max_per_level: int = 200
    max_per_image: int = 50
    class_aware_nms: bool = False  # the original suppressed across classes
    mask_threshold: float = 0.5


@dataclass
class CriterionConfig:
    class_supervision: str = "positives"  # "centroid" (the report's) or "positives"; see docs/training.md
    # "global": one w per loss (the original code), measured better than "per_level" (the report's Eq. 1, one w
    # per level and loss) on held-out video AP, see docs/training.md; "none" sums the raw losses.
    balancing: str = "global"
    force_best_match: bool = True  # each object's best anchor-cell is positive even below the IoU threshold
    smooth_l1_beta: float = 1.0 / 9  # as Faster R-CNN's box regression
    # "batch": box and objectness sums divided by the positives of the whole batch (all levels), classes by its
    # class cells; "level": each level by its own (the landed behaviour before 0.2: a level without positives
    # was divided by 1).
    normalize: str = "batch"


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 8
    optimizer: str = "adamw"  # "adamw" or "sgd" (the original: SGD, lr 1e-3, momentum 0.9)
    lr: float = 2e-3
    momentum: float = 0.9  # SGD momentum, AdamW beta1
    weight_decay: float = 5e-4  # on conv and linear weights only, never on norms and biases
    warmup_fraction: float = 0.05  # of the whole run (steps, or the time budget)
    min_lr_ratio: float = 0.05  # the cosine ends at lr x this
    balance_lr_scale: float = 10.0  # the loss-balancing weights learn this much faster than the network
    grad_clip: float = 10.0  # max global gradient norm; 0 = off
    ema: bool = True
    ema_decay: float = 0.999
    ema_warmup_steps: int = 200  # the EMA decay ramps up over these steps (the first weights are poor)
    amp: bool = True  # mixed precision, on CUDA only
    channels_last: bool = True  # on CUDA only
    workers: int = 1
    seed: int = 0
    time_limit_minutes: float = 0.0  # 0 = no limit; else the schedule fits the budget and the run stops in time
    max_steps: int = 0  # 0 = no limit; else the run (and its schedule) ends after this many optimizer steps
    freeze_backbone_epochs: int = 0  # the original froze the (pretrained) backbone for its first epochs
    checkpoint_every_steps: int = 50  # RUN/last.pt also mid-epoch, so that a killed run resumes where it was
    # TensorBoard also gets the mean of every logged loss and weight over each window of this many steps
    # (`steps/...`), so that a short run's curves have more than one point per epoch; 0 = per epoch only.
    log_every_steps: int = 10
    val_every_epochs: int = 1
    # With an association head, each frame of a batch comes with another frame of its video at most this many
    # frames away (so that the contrastive loss sees every instance twice); 0 = independent frames.
    pair_gap: int = 5
    # More training files, "ANN.json" or "ANN.json=IMAGE_DIR" (YouTube-VIS or COCO), in the first file's
    # categories (matched by name; instances of other categories are left out). `--extra` adds to it.
    extra_data: list[str] = field(default_factory=list)
    criterion: CriterionConfig = field(default_factory=CriterionConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class TrackerConfig:
    # "greedy": the paper's tracker (SPEC §4); "memory": motion, two stages, global assignment, lost tracks
    # kept and re-found, appearance when the model has association embeddings (docs/tracking.md).
    method: str = "memory"
    gate: float = 0.99  # tau: a pair costing more is never matched (the original's 0.99: IoU > 0.01)
    margin: float = 0.01  # gamma, the Lonely Best Friend margin (the original's 0.01)
    class_penalty: float = 0.5  # added to the cost of a pair whose labels differ (0: ignore classes, as the code)
    detection_threshold: float = 0.3  # detections scoring less are not tracked (memory: not in stage one)
    new_tracks: bool = True  # unmatched detections start tracks (the original dropped those that failed 2-3)
    max_age: int = 30  # processed frames (with --stride, every n-th) a lost track stays matchable
    min_length: int = 3  # tracks seen on fewer frames are dropped from the results
    min_score: float = 0.0  # tracks whose mean detection score is lower are dropped from the results
    # memory only (greedy ranks by the plain mean, SPEC §5): a result's score is the mean detection score x
    # min(1, frames seen / score_frames), so that short fragments rank below whole tracks; 0 = the plain mean
    score_frames: int = 6
    # memory only:
    assignment: str = "hungarian"  # "hungarian" (one global assignment) or "greedy" (the paper's rules)
    # the global assignment maximises the summed (gate - cost) ** assignment_power: above 1, one close pair
    # outweighs two loose ones that would break it (1: the plain sum of margins)
    assignment_power: float = 4.0
    motion: str = "kalman"  # "kalman": masks move by the predicted box displacement; "none": last mask as is
    low_threshold: float = 0.1  # stage two takes detections in [low, detection_threshold); 0 = one stage
    low_gate: float = 0.5  # stage two's gate (weak detections must overlap a track well)
    new_track_threshold: float = 0.3  # unmatched detections scoring less start no track
    duplicate_overlap: float = 0.5  # an unmatched detection this much inside a matched one's mask starts no track
    max_jump: float = 2.0  # stage three: a track seen a frame ago may jump this many box sizes; 0 = off
    jump_lost_frames: int = 3  # ... and so may one lost for up to this many processed frames
    # A lost track's mask is also compared where it was last seen (it may have stopped behind an occluder). Off: on
    # twelve recorded sets it took identities across crossings more often than it found stopped objects
    # (docs/tracking.md).
    lost_static: bool = False
    # stage one matches the confirmed tracks (two hits or more) first; tentative ones take the detections left
    confirmed_first: bool = True
    fuse_score: bool = False  # similarity x detection score in the cost (ByteTrack's fuse_score)
    # Stage one adds this x the angle (/ pi) between a track's velocity and the step to the detection (OC-SORT's
    # direction consistency): of two look-alikes crossing, each keeps going its way. Only for tracks without
    # embeddings: where appearance tells instances apart it measured worse (docs/tracking.md). 0 = off.
    direction_weight: float = 0.2
    # share of the appearance distance in the cost, where embeddings exist (0: appearance unused, gate included);
    # 0.85 with the colour histogram in the embedding, 0.5 before (docs/tracking.md)
    appearance_weight: float = 0.85
    # The appearance distance enters the cost as min(1, distance / this): embeddings that tell instances apart put
    # another instance near 0.1-0.3 and the same one near 0.01-0.05, far below the mask term's 0..1 range (1: the
    # raw distance, as before). 0.15 with the colour histogram in the embedding, 0.2 before (docs/tracking.md).
    appearance_scale: float = 0.15
    embedding_momentum: float = 0.9  # a track's embedding: this much of the old one, the rest the new
    # ... for a detection scoring 1; the new one's share falls linearly with the score to none at this floor
    # (Deep OC-SORT's dynamic appearance): a weak detection is often a piece of the object or a mix of two, and
    # its look would drift the track's. 0 = every detection takes the same share (as before; docs/tracking.md).
    embedding_score_floor: float = 0.6
    reid_distance: float = 0.3  # a lost track is found again by appearance alone below this distance; 0 = never
    reid_reach: float = 8.0  # ... within this many box sizes of where it was last seen or is predicted (4 before)
    # A detection whose appearance distance to a track exceeds this is never that track, in any stage, however
    # they overlap or near it is (0 = no such rule): where embeddings tell instances apart (the colour head,
    # docs/tracking.md), this stops look-alike swaps; where they do not, their distances stay far below it and
    # nothing changes. 0.15 with the colour histogram in the embedding (its distances are wider), 0.1 before.
    appearance_gate: float = 0.15
    # Where detections carry embeddings, matching sees a detection whose mask lies at least `contained_overlap`
    # inside the mask of a higher-scoring one of its class at its score x `contained_decay` (1 = off): mostly a
    # piece of that object or a near miss inside it, which at full score starts tracks and takes identities; the
    # results keep its own score. Without embeddings it measured worse on demo-like data (docs/tracking.md).
    contained_overlap: float = 0.7
    contained_decay: float = 0.3


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    track: TrackerConfig = field(default_factory=TrackerConfig)
    img_size: list[int] = field(default_factory=lambda: [416, 416])  # network input (H, W), multiples of 32


class ConfigError(UserError):
    pass


# Model keys added after the first release, with the value that a config written before them meant: a stored
# config (a checkpoint's, an exported folder's) without the key describes a network built that way, whatever
# the default has become since.
MODEL_KEYS_ADDED: dict[str, Any] = {
    "assoc_dim": 0,
    "mask_roi_scale": 1.0,
    "assoc_colour": False,
    "assoc_histogram": 0.0,
}


def with_model_keys_of_its_time(saved: dict) -> dict:
    """A stored config dict with the model keys it predates set to what it meant (`MODEL_KEYS_ADDED`)."""
    model = saved.get("model") or {}
    missing = {k: v for k, v in MODEL_KEYS_ADDED.items() if k not in model}
    return {**saved, "model": {**model, **missing}} if missing else saved


# Keys renamed since earlier versions: configs and checkpoints written with the old name keep loading (the value
# moves to the new key, with a warning that names both).
RENAMED_KEYS: dict[str, str] = {
    "train.mask_proposals_per_image": "model.train_proposals",
}

_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true/false", "String": "a string"}


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _rename_legacy_keys(data: dict, where: str) -> dict:
    """A copy of the nested dict `data` with the keys of RENAMED_KEYS moved to their new place."""
    data = copy.deepcopy(data)
    for old, new in RENAMED_KEYS.items():
        *old_path, old_leaf = old.split(".")
        node = data
        for part in old_path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        warnings.warn(f"{where}: config key '{old}' is now '{new}'; read as '{new}'", UserWarning, stacklevel=3)
        *new_path, new_leaf = new.split(".")
        target = data
        for part in new_path:
            target = target.setdefault(part, {})
        target.setdefault(new_leaf, value)  # where both are given, the new key wins
    return data


def _one_line(error: OmegaConfBaseException, where: str) -> ConfigError:
    """OmegaConf's multi-line messages as one line that names the key."""
    key = getattr(error, "full_key", None) or "?"
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, ConfigKeyError | ConfigAttributeError):
        return ConfigError(f"{where}: unknown key '{key}'")
    converted = re.match(r"Value '(.*)' (?:of type '\w+' )?could not be converted to (\w+)", message)
    if converted:
        wanted = _TYPE_WORDS.get(converted.group(2), converted.group(2))
        return ConfigError(f"{where}: {key}: expected {wanted}, got {converted.group(1)!r}")
    return ConfigError(f"{where}: {key}: {message}")


def merge(cfg: T, data: dict, where: str = "config") -> T:
    """A copy of dataclass `cfg` with the keys of `data` (nested dicts for nested sections) replaced, types
    checked and converted by OmegaConf's structured configs; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cfg), _rename_legacy_keys(data, where))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise _one_line(e, where) from None


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from a (partial) dict; unknown keys are errors, missing keys take defaults."""
    return merge(cls(), data, where)


def parse_override(text: str) -> dict:
    """'train.lr=0.01' -> {'train': {'lr': 0.01}}; the value is parsed as YAML (lists, numbers, booleans)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(cls: type[T], yaml_path: str | os.PathLike | None = None, overrides: list[str] = ()) -> T:
    """Defaults in code, then the YAML file, then `key=value` overrides, in that order."""
    cfg = cls()
    if yaml_path is not None:
        cfg = merge(cfg, _read_yaml(Path(yaml_path)), str(yaml_path))
    for text in overrides:
        cfg = merge(cfg, parse_override(text), f"--set {text}")
    return cfg


def load_saved_config(path: str | os.PathLike) -> Config:
    """A config yolovis saved beside what it wrote (an exported folder's `config.yaml`): the model keys it
    predates read as what it meant (`MODEL_KEYS_ADDED`), as `checkpoint_config` reads a checkpoint's."""
    return from_dict(Config, with_model_keys_of_its_time(_read_yaml(Path(path))), str(path))


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
