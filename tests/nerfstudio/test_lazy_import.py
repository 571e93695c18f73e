"""Without nerfstudio the integration says how to install it; the rest of the package never imports it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

NERFSTUDIO_MODULES = (
    "pipelines.nerfstudio.field",
    "pipelines.nerfstudio.field_model",
    "pipelines.nerfstudio.model",
    "pipelines.nerfstudio.sample_model",
    "pipelines.nerfstudio.random_cameras",
    "pipelines.nerfstudio.sample_pipeline",
    "pipelines.nerfstudio.cameras",
    "pipelines.nerfstudio.dataparser",
    "pipelines.nerfstudio.method",
)


@pytest.mark.parametrize("module", NERFSTUDIO_MODULES)
def test_missing_nerfstudio_names_the_install_command(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import nerfstudio` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "nerfstudio", None)
    for name in NERFSTUDIO_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r"pip install nerfstudio==1\.1\.5"):
        importlib.import_module(module)


def test_adapter_without_nerfstudio_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.nerfstudio.adapter import NerfstudioFieldAdapter

    monkeypatch.setitem(sys.modules, "nerfstudio", None)
    with pytest.raises(ImportError, match=r"pip install nerfstudio==1\.1\.5"):
        NerfstudioFieldAdapter(object())


def test_core_packages_do_not_import_nerfstudio() -> None:
    code = (
        "import sys, epigraf_field.generator, renderers, pipelines.bundle, pipelines.nerfstudio, "
        "pipelines.nerfstudio.scene_transform, pipelines.nerfstudio.capture, pipelines.nerfstudio.adapter, "
        "pipelines.nerfstudio.normals; "
        "print('nerfstudio' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
