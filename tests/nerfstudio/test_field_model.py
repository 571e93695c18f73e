"""The outputs nerfstudio's tools read, on an analytic ball: median depth on the surface, outward normals, RGBA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON
from tests.nerfstudio.test_normals import SoftSphereField

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from nerfstudio.data.scene_box import SceneBox  # noqa: E402

from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig  # noqa: E402
from pipelines.nerfstudio.cameras import to_nerfstudio_cameras  # noqa: E402
from pipelines.nerfstudio.model import EpigrafInvertModelConfig  # noqa: E402
from pipelines.nerfstudio.field_model import SCENE_METADATA_KEY  # noqa: E402
from pipelines.nerfstudio.sample_model import EpigrafSampleModelConfig  # noqa: E402
from pipelines.nerfstudio.scene_transform import SceneTransformConfig, nerfstudio_scene  # noqa: E402
from renderers.cameras import Cameras  # noqa: E402

RADIUS = 0.3
COLOUR = (0.9, 0.4, 0.1)
RESOLUTION = 16


class BallGenerator:
    """The smallest :class:`pipelines.model.GeneratorModel`: every latent is one soft ball in the box [-0.5, 0.5]^3."""

    pipeline = "analytic-ball"
    truncation_psi = 1.0
    truncation_cutoff = None
    image_resolution = RESOLUTION
    renderer = None
    renders_directly = True
    z_dim = 4
    box_half_size = 0.5
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.ball = SoftSphereField(radius=RADIUS, color=COLOUR, sigma=400.0, softness=0.005)
        self.cameras = CameraDistribution(CameraDistributionConfig(radius=2.0, fov_degrees=30.0, near=None, far=None))

    @property
    def network(self) -> nn.Module:
        return self.ball

    def with_options(self, **changes) -> BallGenerator:
        return self

    def mapping(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        return torch.zeros(len(z), 2, 4)

    def synthesize(self, ws: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(ws), 1)

    def field(self, scene: torch.Tensor) -> nn.Module:
        return self.ball


@pytest.fixture(scope="module")
def ball_model():
    config = EpigrafSampleModelConfig(num_coarse_samples=64, num_importance_samples=64, background_color="white")
    box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    return config.setup(scene_box=box, num_train_data=1, generator=BallGenerator()).eval()


def render(model, yaw: float, pitch: float) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Outputs of one 16^2 view, and its rays' scene origins and directions [16, 16, 3]."""
    ours = Cameras.from_spherical(torch.tensor([yaw]), torch.tensor([pitch]), radius=2.0, fov_degrees=30.0)
    camera = to_nerfstudio_cameras(ours, RESOLUTION, RESOLUTION, nerfstudio_scene(0.5))
    rays = camera.generate_rays(camera_indices=0, keep_shape=True)
    return model.get_outputs_for_camera(camera), rays.origins, rays.directions


@pytest.mark.parametrize(("yaw", "pitch"), [(0.0, 0.0), (2.0, 0.6), (-1.0, -0.9)])
def test_depth_normals_and_colour_of_a_ball(ball_model, yaw: float, pitch: float) -> None:
    outputs, origins, directions = render(ball_model, yaw, pitch)
    assert set(outputs) >= {"rgb", "accumulation", "depth", "expected_depth", "normals"}
    # Analytic first hit of |o + t d| = r, in scene units (the ball's radius is RADIUS / 0.5 there).
    radius = RADIUS / 0.5
    b = (origins * directions).sum(-1)
    disc = b**2 - ((origins**2).sum(-1) - radius**2)
    hit = disc > 0.05  # clear hits, away from the silhouette
    empty = disc < -0.5  # clear misses, beyond the soft edge
    t_hit = -b - disc.clamp(min=0).sqrt()
    accumulation = outputs["accumulation"][..., 0]
    assert hit.sum() > 20 and empty.sum() > 20
    assert (accumulation[hit] > 0.99).all() and (accumulation[empty] < 1e-3).all()

    # Median depth sits on the surface (within one fine sample spacing).
    depth = outputs["depth"][..., 0]
    assert (depth[hit] - t_hit[hit]).abs().max() < 0.05

    # Composited normals (mapped to [0, 1]) point out of the ball at the surface point; empty rays read 0.5.
    normals = outputs["normals"] * 2.0 - 1.0
    points = origins + directions * depth[..., None]
    outward = torch.nn.functional.normalize(points, dim=-1)
    cosine = (normals[hit] * outward[hit]).sum(-1)
    assert cosine.min() > math.cos(math.radians(8)), cosine.min()
    assert torch.allclose(outputs["normals"][empty], torch.tensor(0.5))

    # RGBA: the ball's own colour where it is opaque, alpha = opacity (the background is taken out).
    rgba = ball_model.get_rgba_image(outputs)
    assert torch.allclose(rgba[..., 3], accumulation)
    assert torch.allclose(rgba[hit][:, :3], torch.tensor(COLOUR), atol=1e-3)
    assert torch.allclose(outputs["rgb"][empty], torch.ones(3), atol=1e-3)  # white background in rgb


def test_normals_are_left_out_while_training(ball_model) -> None:
    outputs, _, _ = render(ball_model.train(), 0.0, 0.0)
    ball_model.eval()
    assert "normals" not in outputs and "depth" in outputs


def test_invert_model_takes_the_scene_the_dataparser_records(tiny_bundle) -> None:
    box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    recorded = nerfstudio_scene(0.5)
    own = SceneTransformConfig(scale=2.0)
    config = EpigrafInvertModelConfig(generator_path=tiny_bundle, num_coarse_samples=8, num_importance_samples=8,
                                      scene=own)
    model = config.setup(scene_box=box, num_train_data=2, metadata={SCENE_METADATA_KEY: recorded})
    assert model.field.transform == recorded
    config.scene_from_data = False
    assert config.setup(scene_box=box, num_train_data=2, metadata={SCENE_METADATA_KEY: recorded}).field.transform == own
    # nerfstudio's own dataparsers record nothing: the configured scene.
    config.scene_from_data = True
    assert config.setup(scene_box=box, num_train_data=2, metadata={}).field.transform == own
