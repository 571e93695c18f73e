"""`epigraf-train --pipeline mimic3d --recipe NAME`: Mimic3D's stage-2 configurations over the GPU preset."""

from __future__ import annotations

import json

import pytest

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.cli.train import parse_command, parse_config
from pipelines.engine.launch import run_training
from pipelines.mimic3d.pipeline import Mimic3dTrainConfig, resolve_mimic3d_config
from pipelines.recipes import recipes_of
from pipelines.registry import get_pipeline_spec
from tests.pipelines.test_recipes import TINY, option, tiny_folder  # noqa: F401 - tiny_folder is a fixture

# What each recipe must set (dotted options), from Mimic3D's configs (see pipelines/mimic3d/recipes.py).
SHARED = {
    "resolution": 512, "patch_resolution": 64, "batch": 32, "kimg": 25000.0,
    "model.generator.plane_resolution": 256, "model.generator.plane_channels": 32,
    "model.generator.num_feature_channels": 32, "model.generator.decoder_activation": "softplus",
    "model.losses.imitation": "lpips", "model.losses.imitation_weight": 1.0,
    "model.losses.patch_adversarial_weight": 0.1, "model.losses.density_reg": 0.25,
    "model.losses.density_reg_distance_3d": 0.002, "model.losses.pose_conditioning": True,
    "model.losses.pose_swap_probability": 0.5, "model.losses.blur_sigma": 0.0, "model.stage_3d_kimg": 0.0,
    "model.patch_discriminator.channel_base": 32768, "model.patch_discriminator.patch_conditioning": False,
    "model.discriminator.channel_base": 32768, "model.d_patch_optimizer.reg_interval": 16,
    "model.cameras.near": 2.25, "model.cameras.far": 3.3, "model.generator.box_half_size": 0.5,
    "model.renderer.num_coarse": 48, "model.renderer.num_fine": 48, "model.renderer.background": "black",
    "model.neural_resolution_final": None,
}
EXPECTED = {
    "ffhq": {**SHARED, "model.losses.r1_gamma": 1.0, "model.losses.r1_gamma_patch": 1.0, "model.augment.mode": "none"},
    "afhq": {**SHARED, "model.losses.r1_gamma": 5.0, "model.losses.r1_gamma_patch": 5.0, "model.augment.mode": "ada",
             "model.augment.target": 0.6},
}
TINY_MIMIC3D = [
    "--model.generator.num-feature-channels", "8", "--model.superresolution.channels", "8",
    "--model.losses.density-reg-points", "64", "--model.patch-discriminator.channel-base", "64",
    "--model.patch-discriminator.channel-max", "8", "--model.patch-discriminator.mbstd-group-size", "2",
    "--model.losses.imitation", "feature_matching",  # no LPIPS weight files in tests
]


def test_every_mimic3d_recipe_is_tested():
    assert set(recipes_of(get_pipeline_spec("mimic3d"))) == set(EXPECTED)


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_recipe_builds_with_the_papers_values_and_survives_json(recipe):
    parsed = parse_command(["--pipeline", "mimic3d", "--recipe", recipe, "--init-from", "runs/stage-1"])
    config = parsed.config
    assert isinstance(config, Mimic3dTrainConfig) and config.recipe == recipe and config.init_from == "runs/stage-1"
    for dotted, value in EXPECTED[recipe].items():
        assert option(config, dotted) == value, dotted
    assert config.patch_resolution / config.resolution == 0.125  # Mimic3D's patch scale at 512^2
    assert config.data is None
    assert config_from_dict(Mimic3dTrainConfig, json.loads(json.dumps(config_to_dict(config)))) == config
    assert parsed.preset_line.startswith("preset: gpu") and parsed.recipe_line.startswith(f"recipe {recipe} set: ")
    resolved = resolve_mimic3d_config(config)
    assert resolved.patch_discriminator.resolution == 64 and resolved.patch_discriminator.c_dim == 0


def test_command_line_option_wins_over_the_recipe():
    config, _ = parse_config(["--pipeline", "mimic3d", "--recipe", "afhq", "--model.losses.r1-gamma-patch", "2",
                              "--model.losses.imitation", "auto", "--resolution", "256"])
    assert config.model.losses.r1_gamma_patch == 2.0 and config.model.losses.imitation == "auto"
    assert config.resolution == 256 and config.model.losses.r1_gamma == 5.0  # not given: the recipe's


def test_help_lists_the_recipes_as_stage_2_configs_with_the_papers_fid(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--pipeline", "mimic3d", "--help"])
    assert exit_info.value.code == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    for name, fid in (("ffhq", "FID 5.4"), ("afhq", "FID 4.3")):
        line = next(line for line in lines if line.startswith(f"{name}: "))
        assert "stage-2" in line and "--init-from a stage-1 or eg3d run" in line and fid in line, line
    with pytest.raises(SystemExit, match="its recipes: ffhq, afhq$"):
        parse_config(["--pipeline", "mimic3d", "--recipe", "shapenet"])


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_recipe_trains_two_steps_of_the_3d_stage_on_a_tiny_dataset(recipe, tiny_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    argv = ["--pipeline", "mimic3d", "--recipe", recipe, "--data", str(tiny_folder), "--out", str(run_dir),
            *TINY, *TINY_MIMIC3D]
    parsed = parse_command(argv)
    assert run_training(parsed.config, parsed.explicit) is not None
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == pytest.approx([0.002, 0.004])
    assert all("G3d/imitation" in r and "D3d/loss" in r for r in records)  # the 3D stage from the first step
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["recipe"] == recipe and saved["model"]["losses"]["r1_gamma_patch"] == EXPECTED[recipe][
        "model.losses.r1_gamma_patch"]
    assert saved["resolution"] == 32 and saved["patch_resolution"] == 16
