"""Video files: MP4 through imageio-ffmpeg and GIF, read back with the right number of frames."""

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from pipelines.evaluation.video import depth_to_images, write_video


def frames(count: int, h: int = 21, w: int = 30) -> list[np.ndarray]:
    return [np.full((h, w, 3), 10 + 30 * i, np.uint8) for i in range(count)]


def test_mp4_has_the_frames_written(tmp_path):
    path = write_video(frames(7), tmp_path / "clip.mp4", fps=10)
    reader = imageio.get_reader(path)
    assert reader.count_frames() == 7
    assert reader.get_meta_data()["size"] == (30, 22)  # odd height padded to even for H.264
    first = reader.get_data(0)
    assert abs(int(first.mean()) - 10) <= 3
    reader.close()


def test_gif_has_the_frames_written(tmp_path):
    path = write_video(frames(5), tmp_path / "clip.gif", fps=5)
    with Image.open(path) as image:
        assert image.n_frames == 5 and image.size == (30, 21)


def test_bad_video_requests_are_named(tmp_path):
    with pytest.raises(ValueError, match="avi"):
        write_video(frames(2), tmp_path / "clip.avi")
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "clip.gif")


def test_depth_maps_are_bright_near_and_black_in_the_background():
    import torch

    depth = torch.tensor([[[[1.0, 2.0], [3.0, 9.0]]]])
    opacity = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    image = depth_to_images(depth, opacity)
    assert image.shape == (1, 3, 2, 2)
    torch.testing.assert_close(image[0, 0], torch.tensor([[1.0, 0.6], [0.2, 0.0]]))
