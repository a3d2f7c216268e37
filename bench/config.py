"""Typed run configuration, presets and their resolution into one RunConfig per run.

A preset is a TOML file in ``rtrbench/presets`` (or any path). Resolution order,
later wins: preset base sections < preset ``[methods.<name>]`` < preset
``[methods.<name>.lengths."<r>"]`` < command-line overrides.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rtrbench.datasets.classes import read_class_names
from rtrbench.datasets.specs import SynthConfig
from rtrbench.errors import ConfigError, DataError, one_line

SCRIBBLE_LENGTHS = (0.0, 0.3, 0.5, 0.8, 1.0)
# Flattened config keys that say where or how a run executes, not what it computes: left out
# of the run's hash and of the report's row keys (the digests stand in for the paths;
# intermediate evaluations touch neither the weights nor the random streams).
RUNTIME_KEYS = frozenset(
    {"data.root", "data.name", "data.num_workers", "data.cache_mb", "model.backbone_weights", "train.eval_every"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    name: str = "synth"
    root: Path | None = None  # None: the synthetic set described by `synth`
    synth: SynthConfig = SynthConfig()
    crop_size: int = Field(96, ge=16)
    scale_min: float = Field(0.75, gt=0)
    scale_max: float = Field(1.5, gt=0)
    flip: bool = True
    num_workers: int = Field(0, ge=0)
    cache_mb: float = Field(512, ge=0)  # decoded train/val files kept in memory per process
    # Filled in by `resolve_run_config` from `root`: sha256 of the list files and class names.
    # It, not the folder's path, identifies the data in the run's hash.
    digest: str | None = None

    @model_validator(mode="after")
    def _scales_ordered(self) -> DataConfig:
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min {self.scale_min} > scale_max {self.scale_max}")
        return self


class ModelConfig(_Strict):
    width_mult: float = Field(1.0, gt=0)
    decoder_channels: int = Field(256, ge=8)
    output_stride: Literal[8, 16] = 16
    backbone_weights: Path | None = None
    backbone_sha256: str | None = None  # filled in by `resolve_run_config`; identifies the weights


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(0.007, gt=0)  # backbone learning rate; the head gets lr × head_lr_mult
    head_lr_mult: float = Field(10.0, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    poly_power: float = Field(0.9, ge=0)
    eval_every: int = Field(5, ge=1)  # val mIoU for the curve; the final evaluation always runs
    deterministic: bool = False
    # Activations and weights in NHWC, the layout oneDNN and tensor cores prefer: forward +
    # backward 1.3× faster on a CPU (synth preset, one thread). Sums run in another order, so
    # it is part of the run's identity.
    channels_last: bool = True
    # Mixed precision for the network only (autocast); losses, regularizers and solvers stay in
    # fp32. fp16 scales the loss against underflow (GradScaler); bf16 needs no scaling.
    amp: Literal["off", "bf16", "fp16"] = "off"
    # The reference code's `batch_average`: the pixel-averaged loss terms (PCE, full CE, the
    # robust CE) are also divided by the batch size; per-image means (Potts, dense) are not.
    batch_average: bool = False


class RunConfig(_Strict):
    """Everything that determines a run's result; its hash identifies the run."""

    method: str
    length: float = Field(ge=0, le=1)
    seed: int = 0
    # "method": fine-tune from the checkpoint of the method's `init_from` run (same length and
    # seed), as Algorithm 1 does; "scratch": start from the backbone weights like PCE-GD.
    init: Literal["method", "scratch"] = "method"
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    params: dict[str, Any] = {}

    @property
    def run_name(self) -> str:
        return f"{self.method}/len{self.length:g}/seed{self.seed}"

    def config_hash(self) -> str:
        """Hash of what changes the result: the data by its digest, the weights by their sha256,
        without where they lie (RUNTIME_KEYS)."""
        identity = {k: v for k, v in self.flat_params().items() if k not in RUNTIME_KEYS}
        blob = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def flat_params(self) -> dict[str, str]:
        return flatten(self.model_dump(mode="json"))


class Preset(_Strict):
    """A preset file: base data/model/train sections plus per-method and per-length overrides."""

    description: str = ""
    data: dict[str, Any] = {}
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    methods: dict[str, dict[str, Any]] = {}


def preset_names() -> list[str]:
    root = resources.files("rtrbench") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str) -> Preset:
    """Load a built-in preset by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ConfigError(f"{path}: preset file not found")
        text = path.read_text()
    else:
        res = resources.files("rtrbench") / "presets" / f"{name_or_path}.toml"
        if not res.is_file():
            raise ConfigError(f"unknown preset '{name_or_path}'; built-in presets: {', '.join(preset_names())}")
        text, path = res.read_text(), Path(str(res))
    try:
        return Preset.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid preset ({one_line(exc)})") from None


def resolve_run_config(
    preset: Preset,
    method: str,
    length: float,
    seed: int,
    overrides: dict[str, Any] | None = None,
    digests: dict[Path, str] | None = None,
) -> RunConfig:
    """Merge preset sections, the method's and length's overrides, then dotted CLI overrides;
    then fill in the digests of the data root and backbone weights (`digests` memoises them)."""
    tree: dict[str, Any] = {"method": method, "length": float(length), "seed": seed, "params": {}}
    for section in ("data", "model", "train"):
        tree[section] = dict(getattr(preset, section))
    method_section = preset.methods.get(method, {})
    length_sections = method_section.get("lengths", {})
    by_length = {float(k): v for k, v in length_sections.items()}
    for layer in (method_section, by_length.get(float(length), {})):
        for key, value in layer.items():
            if key == "lengths":
                continue
            if key not in ("data", "model", "train", "params"):
                raise ConfigError(f"preset [methods.{method}]: unknown section '{key}'")
            tree[key] = _deep_merge(tree[key], value)
    for dotted, value in (overrides or {}).items():
        # "methods.<name>.<key>" targets one method only (e.g. --set methods.grid-gd.params.nu=3)
        scope, _, rest = dotted.partition(".")
        if scope == "methods":
            name, _, rest = rest.partition(".")
            if name == method:
                _set_dotted(tree, rest, value)
        else:
            _set_dotted(tree, dotted, value)
    try:
        cfg = RunConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration for {method} at length {length:g}: {one_line(exc)}") from None
    memo = {} if digests is None else digests
    data, model = cfg.data, cfg.model
    if data.root is not None:
        data = data.model_copy(update={"digest": _memoised(memo, data.root, data_digest)})
    if model.backbone_weights is not None:
        model = model.model_copy(update={"backbone_sha256": _memoised(memo, model.backbone_weights, file_sha256)})
    return cfg.model_copy(update={"data": data, "model": model})


def data_digest(root: Path) -> str:
    """sha256 of a PASCAL-layout root's train/val lists and class names: the same data in
    another folder has the same digest."""
    if not root.is_dir():
        raise DataError(f"{root}: data root not found")
    h = hashlib.sha256()
    for split in ("train", "val"):
        path = root / "ImageSets" / "SegmentationAug" / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"{path}: image list not found")
        h.update(path.read_bytes())
    h.update("\n".join(read_class_names(root)).encode())
    return h.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"{path}: backbone weights file not found")
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _memoised(memo: dict[Path, str], path: Path, fn) -> str:
    key = path.resolve()
    if key not in memo:
        memo[key] = fn(path)
    return memo[key]


def parse_set_option(item: str) -> tuple[str, Any]:
    """Parse ``--set train.lr=0.01``: the value is read as TOML when it parses, else as a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=0.01")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = "" if value is None else str(value)
    return out


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{dotted}': '{part}' is not a section")
        node = child
    node[leaf] = value
