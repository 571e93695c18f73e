"""Our cameras (OpenCV axes, normalized intrinsics, generator world) as nerfstudio ``Cameras`` in a scene."""

from __future__ import annotations

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.cameras.cameras import Cameras as NerfstudioCameras  # noqa: E402
from nerfstudio.cameras.cameras import CameraType  # noqa: E402

from pipelines.nerfstudio.scene_transform import OPENCV_TO_OPENGL, SceneTransformConfig  # noqa: E402
from renderers.cameras import Cameras  # noqa: E402


def to_nerfstudio_cameras(cameras: Cameras, width: int, height: int,
                          transform: SceneTransformConfig) -> NerfstudioCameras:
    """``b`` pinhole cameras of ``width`` x ``height`` pixels in the nerfstudio scene ``transform`` maps to our world.

    Poses: ``cam2world`` is moved into scene coordinates (``transform.cam2world_from_box``) and its
    camera axes turned from OpenCV (x right, y down, z forward) to OpenGL (x right, y up, z back).
    Intrinsics: normalized ``fx, cx`` times the width, ``fy, cy`` times the height; both libraries
    put pixel ``(i, j)``'s centre at ``(j + 0.5, i + 0.5)``, so a world point lands on the same pixel
    through either. A skew term (never written by EG3D) is dropped: nerfstudio's pinhole has none.

    Example: our camera at (0, 0, 2.7) looking at -z, with ``nerfstudio_scene(0.5)``, sits at scene
    (0, -5.4, 0) looking along +y (the scene is z up).
    """
    if width < 1 or height < 1:
        raise ValueError(f"camera image size must be positive, got {width} x {height}")
    cam2world = transform.cam2world_from_box(cameras.cam2world.detach().float().cpu()) @ OPENCV_TO_OPENGL
    k = cameras.intrinsics.detach().float().cpu()
    return NerfstudioCameras(
        camera_to_worlds=cam2world[:, :3, :4].contiguous(),
        fx=k[:, 0, 0:1] * width,
        fy=k[:, 1, 1:2] * height,
        cx=k[:, 0, 2:3] * width,
        cy=k[:, 1, 2:3] * height,
        width=width,
        height=height,
        camera_type=CameraType.PERSPECTIVE,
    )
