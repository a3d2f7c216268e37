"""Preset resolution, overrides, hashing and the flattened params MLflow gets."""

from __future__ import annotations

import pytest

from rtrbench.config import Preset, load_preset, parse_set_option, preset_names, resolve_run_config
from rtrbench.errors import ConfigError

PRESET = Preset.model_validate(
    {
        "data": {"crop_size": 64, "synth": {"n_train": 10}},
        "model": {"width_mult": 0.5},
        "train": {"epochs": 3, "lr": 0.01},
        "methods": {
            "pce-gd": {"train": {"lr": 0.02}, "lengths": {"0.3": {"train": {"lr": 0.03}}, "1": {"params": {"x": 1}}}},
        },
    }
)


def test_resolution_order_preset_method_length_cli():
    assert resolve_run_config(PRESET, "full", 0.3, 0).train.lr == 0.01
    assert resolve_run_config(PRESET, "pce-gd", 0.5, 0).train.lr == 0.02
    assert resolve_run_config(PRESET, "pce-gd", 0.3, 0).train.lr == 0.03
    assert resolve_run_config(PRESET, "pce-gd", 0.3, 0, {"train.lr": 0.5}).train.lr == 0.5
    scoped = {"methods.pce-gd.train.lr": 0.7}
    assert resolve_run_config(PRESET, "pce-gd", 0.5, 0, scoped).train.lr == 0.7
    assert resolve_run_config(PRESET, "full", 0.5, 0, scoped).train.lr == 0.01
    cfg = resolve_run_config(PRESET, "pce-gd", 1.0, 0)
    assert cfg.params == {"x": 1} and cfg.data.synth.n_train == 10 and cfg.data.synth.n_val == 60


def test_hash_identifies_the_config():
    a = resolve_run_config(PRESET, "pce-gd", 0.5, 0)
    assert a.config_hash() == resolve_run_config(PRESET, "pce-gd", 0.5, 0).config_hash()
    others = [
        resolve_run_config(PRESET, "pce-gd", 0.5, 1),
        resolve_run_config(PRESET, "pce-gd", 0.8, 0),
        resolve_run_config(PRESET, "full", 0.5, 0),
        resolve_run_config(PRESET, "pce-gd", 0.5, 0, {"train.epochs": 4}),
    ]
    assert len({a.config_hash(), *(o.config_hash() for o in others)}) == 5


def test_flat_params_and_run_name():
    cfg = resolve_run_config(PRESET, "pce-gd", 0.3, 2)
    flat = cfg.flat_params()
    assert flat["train.lr"] == "0.03" and flat["data.synth.n_train"] == "10" and flat["data.root"] == ""
    assert cfg.run_name == "pce-gd/len0.3/seed2"


def test_unknown_and_invalid_keys_are_config_errors():
    with pytest.raises(ConfigError, match="train.epochs"):
        resolve_run_config(PRESET, "full", 0.3, 0, {"train.epochs": 0})
    with pytest.raises(ConfigError, match="train.epoch"):
        resolve_run_config(PRESET, "full", 0.3, 0, {"train.epoch": 3})
    with pytest.raises(ConfigError, match="scale_min"):
        resolve_run_config(PRESET, "full", 0.3, 0, {"data.scale_min": 3.0})
    bad = Preset.model_validate({"methods": {"full": {"optimizer": {}}}})
    with pytest.raises(ConfigError, match="unknown section 'optimizer'"):
        resolve_run_config(bad, "full", 0.3, 0)


def test_set_option_parsing():
    assert parse_set_option("train.lr=0.01") == ("train.lr", 0.01)
    assert parse_set_option("data.flip=false") == ("data.flip", False)
    assert parse_set_option("data.name=voc") == ("data.name", "voc")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_option("train.lr")


def test_builtin_presets_resolve(tmp_path):
    assert {"smoke", "synth"} <= set(preset_names())
    for name in preset_names():
        cfg = resolve_run_config(load_preset(name), "pce-gd", 0.5, 0)
        assert cfg.train.epochs >= 1
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")
    broken = tmp_path / "p.toml"
    broken.write_text("[train\n")
    with pytest.raises(ConfigError, match="p.toml: invalid preset"):
        load_preset(str(broken))


# -- run identity: what changes the result, not where it lies -----------------------------------


def test_hash_ignores_the_data_folder_and_runtime_settings(tmp_path):
    import shutil

    from tests.conftest import make_pascal_tree

    root = make_pascal_tree(tmp_path / "a" / "voc")
    moved = tmp_path / "b" / "VOC2012"
    shutil.copytree(root, moved)
    base = resolve_run_config(PRESET, "pce-gd", 0.3, 0, {"data.root": str(root), "data.name": "voc"})
    same = resolve_run_config(PRESET, "pce-gd", 0.3, 0, {"data.root": str(moved), "data.name": "VOC2012", "data.num_workers": 4})
    assert base.data.digest and base.data.digest == same.data.digest
    assert base.config_hash() == same.config_hash()
    # other data (one more training image) is another run
    with (moved / "ImageSets" / "SegmentationAug" / "train.txt").open("a") as f:
        f.write("tr0\n")
    assert resolve_run_config(PRESET, "pce-gd", 0.3, 0, {"data.root": str(moved)}).config_hash() != base.config_hash()
    # the class names are part of the data
    (root / "classes.txt").write_text("background\nsquare\nstripe\n")
    assert resolve_run_config(PRESET, "pce-gd", 0.3, 0, {"data.root": str(root)}).config_hash() != base.config_hash()


def test_hash_identifies_weights_by_content(tmp_path):
    a, b, c = tmp_path / "a.pth", tmp_path / "copy" / "b.pth", tmp_path / "c.pth"
    b.parent.mkdir()
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    c.write_bytes(b"other weights")
    hashes = [resolve_run_config(PRESET, "pce-gd", 0.3, 0, {"model.backbone_weights": str(p)}).config_hash() for p in (a, b, c)]
    assert hashes[0] == hashes[1] != hashes[2]
    with pytest.raises(ConfigError, match="missing.pth: backbone weights file not found"):
        resolve_run_config(PRESET, "pce-gd", 0.3, 0, {"model.backbone_weights": str(tmp_path / "missing.pth")})


def test_init_scratch_does_not_change_runs_without_a_dependency():
    from rtrbench.sweep import SweepSpec, plan

    def hashes(overrides):
        spec = SweepSpec(load_preset("smoke"), ("pce-gd", "grid-gd"), (0.3,), (0,), overrides)
        return {c.method: c.config_hash() for c in plan(spec)}

    method, scratch = hashes({}), hashes({"init": "scratch"})
    assert method["pce-gd"] == scratch["pce-gd"]  # the finished baseline is reused
    assert method["grid-gd"] != scratch["grid-gd"]  # fine-tuned vs from scratch: two runs
