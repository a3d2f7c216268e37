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

from rtrbench.errors import ConfigError

SCRIBBLE_LENGTHS = (0.0, 0.3, 0.5, 0.8, 1.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SynthConfig(_Strict):
    """Parameters of the generated synthetic data set (used when ``data.root`` is unset)."""

    seed: int = 0
    n_train: int = Field(160, ge=1)
    n_val: int = Field(60, ge=0)
    size: int = Field(96, ge=32)
    classes: int = Field(5, ge=2, le=25)  # 6 shapes × 4 textures + background


class PrepareConfig(_Strict):
    """What `rtrbench data prepare` builds in a PASCAL VOC root (DESIGN §4)."""

    root: Path
    scribbles: Path | None = None  # ScribbleSup XML files: a folder or a .zip
    sbd: Path | None = None  # SBD's benchmark_RELEASE/dataset (holds cls/*.mat)
    lengths: tuple[float, ...] = (0.0, 0.3, 0.5, 0.8)  # shortened scribble sets to write
    stroke_width: int = Field(3, ge=1)  # the reference conversion draws 3 px lines
    click_radius: float = Field(3.0, ge=0)  # radius of the disk left by a length-0 stroke
    force: bool = False  # rewrite files that already exist

    @model_validator(mode="after")
    def _lengths_in_range(self) -> PrepareConfig:
        bad = [f"{r:g}" for r in self.lengths if not 0 <= r <= 1]
        if bad:
            raise ValueError(f"scribble lengths {', '.join(bad)} outside 0..1")
        return self


class DataConfig(_Strict):
    name: str = "synth"
    root: Path | None = None  # None: the synthetic set described by `synth`
    synth: SynthConfig = SynthConfig()
    crop_size: int = Field(96, ge=16)
    scale_min: float = Field(0.75, gt=0)
    scale_max: float = Field(1.5, gt=0)
    flip: bool = True
    num_workers: int = Field(0, ge=0)

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


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(0.007, gt=0)  # backbone learning rate; the head gets lr × head_lr_mult
    head_lr_mult: float = Field(10.0, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    poly_power: float = Field(0.9, ge=0)
    eval_every: int = Field(5, ge=1)
    deterministic: bool = False


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
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
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
        raise ConfigError(f"{path}: invalid preset ({_one_line(exc)})") from None


def resolve_run_config(
    preset: Preset, method: str, length: float, seed: int, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Merge preset sections, the method's and length's overrides, then dotted CLI overrides."""
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
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration for {method} at length {length:g}: {_one_line(exc)}") from None


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


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
    return " ".join(str(exc).split())
