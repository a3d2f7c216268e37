"""What the data commands build, as typed models: the synthetic set's and `data prepare`'s options.

Kept free of heavy imports so the command line can read their defaults at start-up.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SynthConfig(BaseModel):
    """Parameters of the generated synthetic data set (used when ``data.root`` is unset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    n_train: int = Field(160, ge=1)
    n_val: int = Field(60, ge=0)
    size: int = Field(96, ge=32)
    classes: int = Field(5, ge=2, le=25)  # 6 shapes × 4 textures + background


class PrepareConfig(BaseModel):
    """What `rtrbench data prepare` builds in a PASCAL VOC root (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path
    scribbles: Path | None = None  # ScribbleSup XML files: a folder or a .zip
    sbd: Path | None = None  # SBD's benchmark_RELEASE/dataset (holds cls/*.mat)
    class_map: Path | None = None  # `name_in_xml = class_name` lines for tags the XML reader does not know
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
