"""Class-conditional patch-gan: G's mapping and D see one-hot classes; the bundle keeps them for inference."""

import math

import pytest
import torch

from pipelines.engine.data_loader import BatchStream, TrainingBatches
from pipelines.engine.trainer import Trainer
from pipelines.model import condition_labels, latent_classes, latents_from_seeds, open_model, render
from pipelines.patch_gan.pipeline import PatchGanPipeline, class_frequencies
from pipelines.pipeline import Progress
from renderers.cameras import LABEL_SIZE
from tests.pipelines.tiny import TinyDataset, tiny_train_config

CPU = torch.device("cpu")
NUM_CLASSES = 3


class TinyClassDataset(TinyDataset):
    """TinyDataset whose discs carry classes ``0, 1, 2, 0, 1, ...``; items stay ``(image, label)``."""

    def __init__(self, size: int = 8) -> None:
        super().__init__(size=size)
        self.num_classes = NUM_CLASSES
        self.class_labels = torch.arange(size) % NUM_CLASSES


def _pipeline(dataset=None, **overrides):
    config = tiny_train_config(**overrides)
    return PatchGanPipeline(config, CPU, TinyClassDataset() if dataset is None else dataset), config


def test_two_steps_train_with_finite_losses_and_the_mapping_sees_the_one_hot(monkeypatch):
    pipeline, config = _pipeline()
    assert pipeline.config.generator.c_dim == NUM_CLASSES  # no pose conditioning: classes only
    seen = []
    mapping = pipeline.G.mapping_network.forward
    monkeypatch.setattr(pipeline.G.mapping_network, "forward",
                        lambda z, c=None, *args: seen.append(c) or mapping(z, c, *args))
    stream = BatchStream(TinyClassDataset(), config.batch, seed=0)
    for step in range(2):
        batch = stream.batch(step, CPU)
        assert batch.classes is not None and batch.classes.tolist() == [i % NUM_CLASSES
                                                                        for i in stream.indices(step)]
        metrics = pipeline.train_step(batch, Progress(step, step * config.batch))
        assert all(math.isfinite(v) for v in metrics.values())
    assert seen and all(c is not None and c.shape == (config.batch, NUM_CLASSES) for c in seen)
    assert all(torch.equal(c.sum(dim=1), torch.ones(config.batch)) and set(c.unique().tolist()) <= {0.0, 1.0}
               for c in seen)


def test_discriminator_and_pose_conditioned_generator_put_the_classes_after_the_camera_label():
    assert _pipeline()[0].config.discriminator.c_dim == NUM_CLASSES
    config = tiny_train_config()
    config.model.losses.pose_conditioning = True
    config.model.losses.camera_conditioned_discriminator = True
    pipeline = PatchGanPipeline(config, CPU, TinyClassDataset())
    assert pipeline.config.generator.c_dim == LABEL_SIZE + NUM_CLASSES
    assert pipeline.config.discriminator.c_dim == LABEL_SIZE + NUM_CLASSES
    labels = torch.zeros(2, LABEL_SIZE)
    d_label = pipeline._discriminator_label(labels, torch.tensor([2, 0]))
    assert torch.equal(d_label[:, LABEL_SIZE:], torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    batch = BatchStream(TinyClassDataset(), config.batch, seed=0).batch(0, CPU)
    assert math.isfinite(pipeline.train_step(batch, Progress(0, 0))["D/loss"])


def test_fake_classes_follow_the_dataset_frequencies():
    dataset = TinyClassDataset()
    dataset.class_labels = torch.tensor([2, 2, 2, 2, 2, 2, 0, 2])
    assert torch.allclose(class_frequencies(dataset, 3), torch.tensor([0.125, 0.0, 0.875]))
    pipeline, _ = _pipeline(dataset)
    classes = pipeline.sample_classes(400)
    assert 1 not in classes.tolist() and 250 < (classes == 2).sum() < 400


def test_class_grouped_batches_give_each_minibatch_std_group_one_class_real_and_fake(monkeypatch, tmp_path):
    dataset = TinyClassDataset(size=12)
    grouped, config = _pipeline(dataset, batch=4)
    assert grouped.real_class_group == 1  # off by default: fake classes are drawn one by one
    grouped.config.losses.class_grouped_batches = True
    assert grouped.real_class_group == grouped.config.discriminator.mbstd_group_size == 2
    fakes = grouped.sample_classes(400).reshape(200, 2)
    assert torch.equal(fakes[:, 0], fakes[:, 1])  # one class per group of consecutive fakes
    assert all(60 < (fakes[:, 0] == k).sum() < 140 for k in range(NUM_CLASSES))  # still the dataset's frequencies
    odd = grouped.sample_classes(3)
    assert odd.shape == (3,) and odd[0] == odd[1]
    with TrainingBatches(dataset, global_batch=4, seed=1, workers=0, class_group=grouped.real_class_group) as batches:
        reals = [batches.batch(step).classes.reshape(-1, 2) for step in range(6)]
    assert all(torch.equal(pair[:, 0], pair[:, 1]) for pair in reals)
    assert len({tuple(pair[:, 0].tolist()) for pair in reals}) > 1  # the groups' classes vary between batches
    # The trainer asks the pipeline for the grouping.
    seen = {}
    original = TrainingBatches.__init__
    monkeypatch.setattr(TrainingBatches, "__init__",
                        lambda self, *args, **kwargs: seen.update(kwargs) or original(self, *args, **kwargs))
    Trainer(config, grouped, dataset, tmp_path, CPU)
    assert seen["class_group"] == 2


def test_training_batches_carry_the_classes_of_their_indices():
    dataset = TinyClassDataset()
    with TrainingBatches(dataset, global_batch=4, seed=3, workers=0) as batches:
        batch = batches.batch(1)
        indices = batches.schedule.indices(1)
    assert batch.classes.tolist() == dataset.class_labels[indices].tolist()
    assert len(dataset[0]) == 2  # dataset items are unchanged


def test_bundle_reopens_and_renders_each_class_differently(tmp_path):
    pipeline, _ = _pipeline()
    pipeline.model().save(tmp_path)
    model = open_model(tmp_path)
    assert model.num_classes == NUM_CLASSES and model.class_index is None
    z = torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(0))
    cameras = model.cameras.center_pose()
    images = [render(model.with_options(class_index=k), z, cameras, 16).rgb for k in range(NUM_CLASSES)]
    assert not torch.allclose(images[0], images[1]) and not torch.allclose(images[1], images[2])
    own_class = int(latent_classes(z, NUM_CLASSES)[0])
    assert torch.equal(render(model, z, cameras, 16).rgb, images[own_class])  # default: the latent's own class
    with pytest.raises(ValueError, match="out of range"):
        model.with_options(class_index=NUM_CLASSES)


def test_condition_labels_append_the_one_hot_class():
    centre = condition_labels(LABEL_SIZE + 2, None, _cameras(), 3, CPU, num_classes=2, class_index=1)
    assert centre.shape == (3, LABEL_SIZE + 2) and torch.equal(centre[:, LABEL_SIZE:], torch.tensor([[0.0, 1.0]] * 3))
    assert torch.equal(condition_labels(2, None, _cameras(), 2, CPU, num_classes=2),
                       torch.tensor([[1.0, 0.0]] * 2))  # no latents: class 0
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    own = condition_labels(3, None, _cameras(), 4, CPU, num_classes=3, z=z)
    assert torch.equal(own, torch.nn.functional.one_hot(latent_classes(z, 3), 3).float())
    pinned = condition_labels(3, None, _cameras(), 4, CPU, num_classes=3, class_index=2, z=z)
    assert torch.equal(pinned, torch.tensor([[0.0, 0.0, 1.0]] * 4))  # an asked-for class wins over the latents'


def test_drawn_classes_are_the_latents_own_a_pinned_one_or_zero_when_unconditional():
    from pipelines.model import drawn_classes

    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(drawn_classes(z, 3), latent_classes(z, 3))
    assert torch.equal(drawn_classes(z, 3, class_index=1), torch.ones(6, dtype=torch.long))
    assert torch.equal(drawn_classes(z, 0), torch.zeros(6, dtype=torch.long))


def test_latent_classes_are_fixed_per_latent_and_uniform_over_many():
    z = torch.randn(4000, 16, generator=torch.Generator().manual_seed(4))
    classes = latent_classes(z, 4)
    counts = torch.bincount(classes, minlength=4)
    assert counts.min() > 900 and counts.max() < 1100, counts  # 1000 each, binomial sd ~27
    # A latent's class does not depend on the batch it comes in, nor on its device or dtype round trip.
    assert torch.equal(latent_classes(z[7:9], 4), classes[7:9])
    assert torch.equal(latent_classes(z.flip(0), 4), classes.flip(0))
    assert torch.equal(latent_classes(z.double(), 4), classes)
    # Independent of the latent's values: the mean first coordinate is about 0 in every class.
    for k in range(4):
        assert abs(float(z[classes == k, 0].mean())) < 0.15


def _cameras():
    """A tiny run's camera distribution (the dataset's frontal poses)."""
    return PatchGanPipeline(tiny_train_config(), CPU, TinyDataset()).camera_distribution


def test_unconditional_dataset_leaves_c_dim_zero(tmp_path):
    pipeline, _ = _pipeline(TinyDataset())
    assert pipeline.num_classes == 0
    assert pipeline.config.generator.c_dim == 0 and pipeline.config.discriminator.c_dim == 0
    assert pipeline.sample_classes(2) is None
    pipeline.model().save(tmp_path)
    assert open_model(tmp_path).num_classes == 0


def test_render_command_rejects_an_out_of_range_class_index(tmp_path):
    from pipelines.cli.render import main

    pipeline, _ = _pipeline()
    pipeline.model().save(tmp_path / "bundle")
    with pytest.raises(SystemExit, match="error: .*class index 7 is out of range"):
        main([str(tmp_path / "bundle"), "--out", str(tmp_path / "out"), "--class-index", "7", "--no-progress"])
    code = main([str(tmp_path / "bundle"), "--out", str(tmp_path / "out"), "--class-index", "2", "--seeds", "0",
                  "--outputs", "grid", "--resolution", "16", "--no-maps", "--no-progress"])
    assert code == 0 and (tmp_path / "out" / "grid.png").is_file()


def test_export_takes_a_class_and_both_commands_refuse_one_for_an_unconditional_generator(tmp_path):
    from safetensors.torch import load_file

    from pipelines.cli.export import main as export
    from pipelines.cli.render import main as render_command

    pipeline, _ = _pipeline()
    model = pipeline.model()
    model.save(tmp_path / "bundle")
    planes = []
    for k in range(NUM_CLASSES):
        out = tmp_path / f"class{k}"
        assert export([str(tmp_path / "bundle"), "--out", str(out), "--planes", "--class-index", str(k),
                       "--no-progress"]) == 0
        planes.append(load_file(str(out / "seed0000_planes.safetensors"))["planes"])
    assert not torch.allclose(planes[0], planes[1]) and not torch.allclose(planes[1], planes[2])
    assert export([str(tmp_path / "bundle"), "--out", str(tmp_path / "own"), "--planes", "--no-progress"]) == 0
    own = int(latent_classes(latents_from_seeds([0], model.z_dim), NUM_CLASSES)[0])
    assert torch.allclose(load_file(str(tmp_path / "own" / "seed0000_planes.safetensors"))["planes"], planes[own])
    with pytest.raises(SystemExit, match="error: .*class index 5 is out of range"):
        export([str(tmp_path / "bundle"), "--out", str(tmp_path / "x"), "--planes", "--class-index", "5"])
    plain, _ = _pipeline(TinyDataset())
    plain.model().save(tmp_path / "plain")
    for command, extra in ((export, ["--planes"]), (render_command, [])):
        with pytest.raises(SystemExit, match="error: --class-index 1 given, .* not class-conditional"):
            command([str(tmp_path / "plain"), "--out", str(tmp_path / "y"), "--class-index", "1", *extra])


def test_eg3d_trains_and_saves_class_conditionally(tmp_path):
    from pipelines.eg3d.pipeline import Eg3dPipeline
    from tests.pipelines.eg3d.tiny import tiny_eg3d_config

    config = tiny_eg3d_config()
    config.model.g_optimizer.reg_interval = 1  # the density regularization draws classes too
    pipeline = Eg3dPipeline(config, CPU, TinyClassDataset())
    assert pipeline.config.generator.c_dim == pipeline.config.discriminator.c_dim == LABEL_SIZE + NUM_CLASSES
    batch = BatchStream(TinyClassDataset(), config.batch, seed=0).batch(0, CPU)
    assert all(math.isfinite(v) for v in pipeline.train_step(batch, Progress(0, 0)).values())
    pipeline.model().save(tmp_path)
    assert open_model(tmp_path).num_classes == NUM_CLASSES


def test_snapshot_rows_show_every_class_in_turn():
    from pipelines.model import render_rows_by_class

    pipeline, _ = _pipeline()
    model = pipeline.model()
    columns, rows = 2, 4
    z = torch.randn(columns * rows, model.z_dim, generator=torch.Generator().manual_seed(1))
    cameras = model.cameras.sample(columns * rows, torch.Generator().manual_seed(2))
    grid = render_rows_by_class(model, z, cameras, 16, columns).rgb
    for i in range(columns * rows):
        row_class = (i // columns) % NUM_CLASSES  # rows 0..3 in classes 0, 1, 2, 0
        alone = render(model.with_options(class_index=row_class), z[i:i + 1], cameras[i:i + 1], 16).rgb
        assert torch.allclose(grid[i:i + 1], alone, atol=1e-5), f"latent {i} is not drawn in class {row_class}"
    assert not torch.allclose(grid[2:4], render(model, z[2:4], cameras[2:4], 16).rgb)  # row 1 is not class 0
    unconditional, _ = _pipeline(TinyDataset())
    plain = unconditional.model()
    assert torch.equal(render_rows_by_class(plain, z, cameras, 16, columns).rgb, render(plain, z, cameras, 16).rgb)
