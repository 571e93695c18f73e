"""`epigraf-train` option parsing: presets, help and the rejection of impossible values."""

import pytest

from pipelines.cli.train import main, parse_config


def test_cpu_preset_is_chosen_without_cuda_and_says_why():
    config, line = parse_config(["--device", "cpu"])
    assert line.startswith("preset: cpu")
    assert (config.resolution, config.patch_resolution) == (64, 32)


def test_gpu_preset_is_paper_like():
    config, line = parse_config(["--preset", "gpu"])
    assert line == "preset: gpu (--preset gpu)"
    assert (config.resolution, config.patch_resolution, config.batch) == (256, 64, 64)
    assert config.model.renderer.num_coarse == 48 and config.model.renderer.num_fine == 48


def test_options_override_the_preset():
    config, _ = parse_config(["--kimg", "3", "--batch", "4", "--resolution", "128", "--patch-resolution", "16",
                              "--seed", "7", "--model.losses.r1-gamma", "0.5"])
    assert (config.kimg, config.batch, config.resolution, config.patch_resolution, config.seed) == (3, 4, 128, 16, 7)
    assert config.model.losses.r1_gamma == 0.5


def test_help_lists_every_main_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--pipeline", "--data", "--out", "--kimg", "--resolution", "--patch-resolution", "--batch",
                   "--resume", "--seed", "--device"):
        assert option in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patch-resolution", "128", "--resolution", "64"], "larger than --resolution"),
        (["--resolution", "96"], "--resolution must be a power of two"),
        (["--patch-resolution", "24"], "--patch-resolution must be a power of two"),
        (["--kimg", "-1"], "--kimg must be positive"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--data", "/no/such/dataset.zip"], "does not exist"),
    ],
)
def test_bad_values_are_rejected_with_a_message(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cpu", *args])
    assert message in str(exit_info.value)


def test_unknown_pipeline_lists_the_registered_ones():
    with pytest.raises(SystemExit, match="patch-gan"):
        parse_config(["--pipeline", "nope"])
