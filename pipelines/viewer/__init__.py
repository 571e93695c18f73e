"""The live 3D viewer: a browser tab (viser) that renders a generator from the user's camera."""

from pipelines.viewer.camera_conversion import ViewCamera, cameras_from_view, view_from_cameras
from pipelines.viewer.live import LiveViewer, LiveViewerConfig
from pipelines.viewer.server import GeneratorViewer, ViewerConfig
from pipelines.viewer.settings import ViewSettings

__all__ = [
    "GeneratorViewer",
    "LiveViewer",
    "LiveViewerConfig",
    "ViewCamera",
    "ViewSettings",
    "ViewerConfig",
    "cameras_from_view",
    "view_from_cameras",
]
