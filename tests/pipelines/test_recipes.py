"""`epigraf-train --recipe NAME`: the papers' configurations per dataset, over the GPU preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.cli.train import main, parse_command, parse_config
from pipelines.eg3d.pipeline import Eg3dConfig, cpu_preset as eg3d_cpu_preset, gpu_preset as eg3d_gpu_preset
from pipelines.engine.launch import run_training
from pipelines.recipes import recipes_of, replace_options
from pipelines.registry import get_pipeline_spec
from tests.pipelines.tiny import TinyDataset

RECIPES = [
    ("patch-gan", "ffhq"), ("patch-gan", "afhq"), ("patch-gan", "megascans"), ("patch-gan", "shapenet"),
    ("eg3d", "ffhq"), ("eg3d", "afhq"), ("eg3d", "shapenet"),
]

# What each recipe must set (dotted options), from the papers' configs (see the recipes modules' docstrings).
EXPECTED = {
    ("patch-gan", "ffhq"): {
        "resolution": 512, "patch_resolution": 64, "batch": 64, "kimg": 50000.0, "mirror": True,
        "model.generator.box_half_size": 0.2, "model.renderer.box_half_size": 0.2,
        "model.renderer.background": "last_sample", "model.losses.r1_gamma": 0.1, "model.augment.mode": "ada",
        "model.augment.target": 0.6, "model.cameras.fov_degrees": 12.0, "model.cameras.near": 0.88,
        "model.cameras.far": 1.12, "model.generator.plane_resolution": 512,
        "model.discriminator.label_mapping_layers": 2, "model.generator.decoder_activation": "leaky_relu",
    },
    ("patch-gan", "afhq"): {
        "resolution": 256, "batch": 64, "model.generator.box_half_size": 0.2, "model.renderer.box_half_size": 0.2,
        "model.losses.r1_gamma": 0.05, "model.augment.mode": "ada", "model.cameras.fov_degrees": 12.0,
    },
    ("patch-gan", "megascans"): {
        "resolution": 256, "model.generator.box_half_size": 0.475, "model.renderer.box_half_size": 0.475,
        "model.renderer.background": "white", "model.cameras.angles": "sphere", "model.cameras.fov_degrees": 30.0,
        "model.cameras.near": 0.75, "model.cameras.far": 1.25, "model.losses.r1_gamma": 0.05,
    },
    ("patch-gan", "shapenet"): {
        "resolution": 128, "model.generator.box_half_size": 0.8, "model.renderer.box_half_size": 0.8,
        "model.renderer.background": "white", "model.cameras.source": "dataset", "model.losses.r1_gamma": 0.05,
        "model.renderer.num_coarse": 64, "model.renderer.num_fine": 64,
    },
    ("eg3d", "ffhq"): {
        "resolution": 512, "patch_resolution": 64, "batch": 32, "kimg": 25000.0, "model.losses.r1_gamma": 1.0,
        "model.losses.pose_conditioning": True, "model.losses.pose_swap_probability": 0.5,
        "model.losses.density_reg": 0.25, "model.cameras.source": "dataset", "model.cameras.near": 2.25,
        "model.cameras.far": 3.3, "model.generator.box_half_size": 0.5, "model.renderer.background": "black",
        "model.generator.decoder_activation": "softplus", "model.discriminator.label_mapping_layers": 8,
        "model.discriminator.channel_base": 32768, "model.augment.mode": "none",
        "model.neural_resolution_final": None,
    },
    ("eg3d", "afhq"): {
        "resolution": 512, "model.losses.r1_gamma": 5.0, "model.augment.mode": "ada",
        "model.losses.pose_swap_probability": 0.8, "model.neural_resolution_final": 128,
        "model.neural_resolution_fade_kimg": 1000.0,
    },
    ("eg3d", "shapenet"): {
        "resolution": 128, "mirror": False, "model.losses.r1_gamma": 0.3, "model.losses.pose_conditioning": False,
        "model.losses.camera_conditioned_discriminator": True, "model.cameras.near": 0.1, "model.cameras.far": 2.6,
        "model.generator.box_half_size": 0.8, "model.renderer.box_half_size": 0.8,
        "model.renderer.num_coarse": 64, "model.renderer.num_fine": 64, "model.renderer.background": "white",
    },
}


def option(config, dotted: str):
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def test_every_registered_recipe_is_tested():
    registered = {(name, recipe) for name in ("patch-gan", "eg3d") for recipe in recipes_of(get_pipeline_spec(name))}
    assert registered == set(RECIPES) == set(EXPECTED)


@pytest.mark.parametrize(("pipeline", "recipe"), RECIPES)
def test_recipe_builds_with_the_papers_values_and_survives_json(pipeline, recipe):
    parsed = parse_command(["--pipeline", pipeline, "--recipe", recipe, "--preset", "gpu"])
    config = parsed.config
    assert config.pipeline == pipeline and config.recipe == recipe
    for dotted, value in EXPECTED[(pipeline, recipe)].items():
        assert option(config, dotted) == value, dotted
    assert config.data is None  # a recipe never picks the dataset
    back = config_from_dict(type(config), json.loads(json.dumps(config_to_dict(config))))
    assert back == config
    assert parsed.preset_line.startswith("preset: gpu")
    assert parsed.recipe_line.startswith(f"recipe {recipe} set: ")


def test_recipe_line_says_what_it_set_and_what_the_command_line_overrode():
    parsed = parse_command(["--recipe", "ffhq", "--resolution", "256", "--preset", "gpu"])
    line = parsed.recipe_line
    assert "resolution=512 (given: 256)" in line
    assert "model.generator.box_half_size=0.2" in line and "model.renderer.background=last_sample" in line
    assert "batch=" not in line  # EpiGRAF's batch 64 is already the preset's
    assert parsed.lines == [parsed.preset_line, line]


def test_command_line_option_wins_over_the_recipe():
    config, _ = parse_config(["--recipe", "ffhq", "--model.losses.r1-gamma", "0.5", "--resolution", "256",
                              "--model.generator.box-half-size", "0.3", "--no-mirror"])
    assert config.model.losses.r1_gamma == 0.5 and config.resolution == 256 and not config.mirror
    assert config.model.generator.box_half_size == 0.3
    assert config.model.renderer.box_half_size == 0.2  # not given: the recipe's
    config, _ = parse_config(["--pipeline", "eg3d", "--recipe", "afhq", "--model.augment.mode", "none",
                              "--model.neural-resolution-final", "None"])
    assert config.model.augment.mode == "none" and config.model.neural_resolution_final is None
    assert config.model.losses.r1_gamma == 5.0


def test_recipe_applies_over_the_gpu_preset_whatever_the_device():
    config, line = parse_config(["--recipe", "megascans", "--device", "cpu"])
    assert line == "preset: gpu (--recipe megascans: a paper's configuration starts from the GPU preset)"
    assert config.model.generator.plane_resolution == 512 and config.device == "cpu"
    with pytest.raises(SystemExit, match="GPU preset, not --preset cpu"):
        parse_config(["--recipe", "megascans", "--preset", "cpu"])


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(SystemExit) as error:
        parse_config(["--recipe", "lsun"])
    message = str(error.value)
    assert message.startswith("error: --recipe 'lsun' is not a recipe of --pipeline patch-gan")
    assert message.endswith("its recipes: ffhq, afhq, megascans, shapenet") and "\n" not in message
    with pytest.raises(SystemExit, match="its recipes: ffhq, afhq, shapenet$"):
        parse_config(["--pipeline", "eg3d", "--recipe", "megascans"])
    with pytest.raises(SystemExit, match="--recipe 'lsun' is not a recipe"):
        main(["--recipe", "lsun", "--device", "cpu"])


def test_no_recipe_records_none():
    config, _ = parse_config(["--device", "cpu"])
    assert config.recipe is None
    assert parse_command(["--device", "cpu"]).recipe_line is None


@pytest.mark.parametrize("pipeline", ["patch-gan", "eg3d"])
def test_help_lists_each_recipe_on_its_own_line(pipeline, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--pipeline", pipeline, "--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for name, recipe in recipes_of(get_pipeline_spec(pipeline)).items():
        assert sum(line.strip().startswith(f"{name}: ") for line in lines) == 1, name
        assert recipe.summary
    assert any(line.startswith(f"Recipes of {pipeline} (--recipe NAME") for line in lines)


def test_main_prints_the_recipe_line_before_training(monkeypatch, capsys):
    import pipelines.engine.launch as launch

    seen = []
    monkeypatch.setattr(launch, "run_training", lambda config, explicit: seen.append((config, explicit)))
    assert main(["--recipe", "afhq", "--device", "cpu", "--batch", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("preset: gpu") and out[1].startswith("recipe afhq set: ")
    config, explicit = seen[0]
    assert config.recipe == "afhq" and config.batch == 8
    assert {"recipe", "batch"} <= explicit  # a resume compares the recipe's name with the run's


def test_replace_options_copies_and_names_unknown_options():
    preset = eg3d_gpu_preset()
    changed = replace_options(preset, {"batch": 4, "model.losses.r1_gamma": 2.0, "model.renderer.num_fine": 8})
    assert (changed.batch, changed.model.losses.r1_gamma, changed.model.renderer.num_fine) == (4, 2.0, 8)
    assert (preset.batch, preset.model.losses.r1_gamma, preset.model.renderer.num_fine) == (32, 1.0, 48)
    with pytest.raises(ValueError, match="no option 'gamma'"):
        replace_options(preset, {"model.losses.gamma": 1.0})


def test_eg3d_presets_use_softplus_and_an_8_layer_label_mapping():
    for preset in (eg3d_gpu_preset(), eg3d_cpu_preset()):
        assert preset.model.generator.decoder_activation == "softplus"
        assert preset.model.discriminator.label_mapping_layers == 8
    patch_gan = parse_config(["--preset", "gpu"])[0].model
    assert patch_gan.generator.decoder_activation == "leaky_relu" and patch_gan.discriminator.label_mapping_layers == 2


def test_old_eg3d_run_config_keeps_the_old_decoder_and_label_mapping():
    # A config.json written before the options existed holds the generator and discriminator without them.
    saved = config_to_dict(Eg3dConfig())
    del saved["generator"]["decoder_activation"]
    del saved["discriminator"]["label_mapping_layers"]
    old = config_from_dict(Eg3dConfig, saved)
    assert old.generator.decoder_activation == "leaky_relu" and old.discriminator.label_mapping_layers == 2


# ------------------------------------------------------------------------------------ training
TINY = [
    "--resolution", "32", "--patch-resolution", "16", "--batch", "2", "--kimg", str(2 * 2 / 1000),
    "--device", "cpu", "--data-workers", "0",
    "--model.generator.z-dim", "8", "--model.generator.w-dim", "8", "--model.generator.plane-resolution", "8",
    "--model.generator.plane-channels", "4", "--model.generator.channel-base", "64",
    "--model.generator.channel-max", "8", "--model.generator.decoder-hidden", "8",
    "--model.discriminator.channel-base", "64", "--model.discriminator.channel-max", "8",
    "--model.discriminator.mbstd-group-size", "2",
    "--model.renderer.num-coarse", "4", "--model.renderer.num-fine", "4",
    "--trainer.tick-kimg", "0.002", "--trainer.snapshot-grid", "2", "1", "--trainer.turntable-samples", "0",
    "--trainer.no-tensorboard", "--trainer.no-progress-bar",
]
TINY_PER_PIPELINE = {
    "patch-gan": ["--model.discriminator.hyper-mod-dim", "8", "--model.discriminator.patch-table-dim", "4"],
    "eg3d": ["--model.generator.num-feature-channels", "8", "--model.superresolution.channels", "8",
             "--model.losses.density-reg-points", "64"],
}
TINY_PER_RECIPE = {("eg3d", "afhq"): ["--model.neural-resolution-final", "32", "--model.neural-resolution-fade-kimg",
                                      "0.004"]}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """8 labelled 32^2 images in the EG3D layout (dataset.json)."""
    path = tmp_path_factory.mktemp("recipes") / "data"
    dataset = TinyDataset(size=8, resolution=32)
    path.mkdir()
    labels = []
    for index in range(len(dataset)):
        image = ((dataset.images[index].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(image).save(path / f"img{index:03d}.png")
        labels.append([f"img{index:03d}.png", dataset.labels[index].tolist()])
    (path / "dataset.json").write_text(json.dumps({"labels": labels}))
    return path


@pytest.mark.parametrize(("pipeline", "recipe"), RECIPES)
def test_recipe_trains_two_steps_on_a_tiny_dataset(pipeline, recipe, tiny_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    argv = ["--pipeline", pipeline, "--recipe", recipe, "--preset", "gpu", "--data", str(tiny_folder),
            "--out", str(run_dir), *TINY, *TINY_PER_PIPELINE[pipeline], *TINY_PER_RECIPE.get((pipeline, recipe), [])]
    parsed = parse_command(argv)
    final = run_training(parsed.config, parsed.explicit)
    assert final is not None and (final / "generator" / "weights.safetensors").is_file()
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == pytest.approx([0.002, 0.004])  # two steps of batch 2
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["recipe"] == recipe
    # The recipe's scene survives into the run; the sizes are the command line's.
    expected = EXPECTED[(pipeline, recipe)]
    assert saved["model"]["generator"]["box_half_size"] == expected.get("model.generator.box_half_size", 0.5)
    assert saved["model"]["losses"]["r1_gamma"] == expected["model.losses.r1_gamma"]
    assert saved["resolution"] == 32 and saved["model"]["generator"]["plane_resolution"] == 8


def test_resume_keeps_the_runs_recipe_and_refuses_another(tiny_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    start = ["--recipe", "megascans", "--data", str(tiny_folder), "--out", str(run_dir), *TINY,
             *TINY_PER_PIPELINE["patch-gan"]]
    parsed = parse_command(start)
    run_training(parsed.config, parsed.explicit)
    with pytest.raises(SystemExit, match="--recipe: the run has megascans, the command line shapenet"):
        main(["--resume", "latest", "--out", str(run_dir), "--recipe", "shapenet", "--device", "cpu"])
    assert main(["--resume", "latest", "--out", str(run_dir), "--recipe", "megascans", "--kimg", "0.006",
                 "--device", "cpu", "--data-workers", "0"]) == 0
    assert "resuming from" in capsys.readouterr().out
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["recipe"] == "megascans" and saved["model"]["generator"]["box_half_size"] == 0.475
