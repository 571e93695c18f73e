#!/usr/bin/env bash
# CI: the nerfstudio integration in a virtual environment of its own (nerfstudio 1.1.5 pins
# viser 0.2.7 and nerfacc 0.5.2), with CPU torch, then tests/nerfstudio.
#
# NERFSTUDIO_INSTALL=lean (default) installs nerfstudio with the dependencies that its training,
# fields, samplers, renderers, viewer, ns-render and ns-export import, and leaves out the ones only
# its data processing, dataset downloads, notebooks and third-party loggers use (jupyterlab, wandb,
# ...: most of the install time). ns-export's open3d comes as open3d-cpu (the same module without
# the CUDA build's few hundred MB). NERFSTUDIO_INSTALL=full runs `pip install nerfstudio==1.1.5`
# with everything, as a user would. Either way ns-render finds ffmpeg: the binary imageio-ffmpeg
# ships is linked into the environment's bin folder.
# NERFSTUDIO_VENV=DIR keeps the environment in DIR (reused with NERFSTUDIO_REUSE=1) instead of a
# temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/torchvision_cpu_hook.sh
. .ci/torchvision_cpu_hook.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

LEFT_OUT="av comet-ml cryptography gdown h5py ipywidgets jupyterlab nuscenes-devkit open3d plotly pyngrok python-socketio timm wandb"
# ns-export imports open3d whatever it exports; open3d-cpu brings it (and plotly, ipywidgets) for the lean install.
EXPORTER_PACKAGES="open3d-cpu==0.19.0"

if [[ -n "${NERFSTUDIO_VENV:-}" ]]; then
    venv="$NERFSTUDIO_VENV"
else
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    venv="$scratch/venv"
fi

install_environment() {
    rm -rf "$venv"
    python3 -m venv "$venv"
    . "$venv/bin/activate"
    # CPU torch first; naming it again in every later install keeps pip from replacing it with the
    # CUDA build (GBs of nvidia packages). torchvision 0.28.0 is the release built for torch 2.13.0.
    pip install -q torch==2.13.0
    if [[ "${NERFSTUDIO_INSTALL:-lean}" == full ]]; then
        pip install -q torch==2.13.0 torchvision==0.28.0 nerfstudio==1.1.5 -e ".[test]"
    else
        pip install -q --no-deps nerfstudio==1.1.5
        # nerfstudio's own requirements less the left-out ones, plus PyYAML, which nerfstudio
        # imports without declaring it (a left-out package brings it in a full install).
        local requirements
        requirements="$(LEFT_OUT="$LEFT_OUT" python -c '
import importlib.metadata, os
from pip._vendor.packaging.requirements import Requirement
left_out = set(os.environ["LEFT_OUT"].split())
for line in importlib.metadata.requires("nerfstudio"):
    requirement = Requirement(line)
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue
    if requirement.name.lower() not in left_out:
        print(str(requirement).split(";")[0].replace(" ", ""))
print("PyYAML")
')"
        # pip's warning about the left-out packages is silenced here; the pip check below still
        # fails on any other unmet requirement.
        # shellcheck disable=SC2086  # one requirement per word
        pip install -q --no-warn-conflicts torch==2.13.0 torchvision==0.28.0 $requirements -e ".[test]"
        # shellcheck disable=SC2086  # one requirement per word
        pip install -q torch==2.13.0 $EXPORTER_PACKAGES
    fi
    install_torchvision_hook
}

if [[ "${NERFSTUDIO_REUSE:-0}" == 1 && -x "$venv/bin/ns-train" ]]; then
    . "$venv/bin/activate"
    pip install -q --no-deps -e .
    # An environment built before ns-export was tested lacks the exporter's packages.
    if ! python -c "import open3d, pymeshlab, xatlas, mediapy" 2> /dev/null; then
        # shellcheck disable=SC2086  # one requirement per word
        pip install -q torch==2.13.0 $EXPORTER_PACKAGES pymeshlab xatlas mediapy
    fi
else
    install_environment
fi
# ns-render checks for ffmpeg on PATH; imageio-ffmpeg (a project dependency) ships one.
ln -sf "$(python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" "$venv/bin/ffmpeg"

# Every requirement is met, except the left-out ones of a lean install.
left_out_pattern="^nerfstudio 1\.1\.5 requires ($(echo "$LEFT_OUT" | tr ' ' '|'))[^a-z-]"
broken="$(pip check | grep -v -E "$left_out_pattern" | grep -v '^No broken requirements found' || true)"
if [[ -n "$broken" ]]; then
    echo "pip check: unmet requirements in the nerfstudio environment:" >&2
    echo "$broken" >&2
    exit 1
fi
python - <<'EOF'
from importlib.metadata import version

import torch
import nerfstudio.pipelines.base_pipeline  # noqa: F401  (imports torchvision.utils)
import nerfstudio.scripts.exporter  # noqa: F401  (imports open3d, pymeshlab, xatlas, mediapy)
import nerfstudio.scripts.render  # noqa: F401
from pipelines.nerfstudio.method import epigraf_invert, epigraf_sample

assert torch.__version__.startswith("2.13.0") and torch.version.cuda is None, torch.__version__
names = ("torch", "torchvision", "numpy", "nerfacc", "viser", "tyro", "nerfstudio", "epigraf")
methods = f"{epigraf_invert.config.method_name}, {epigraf_sample.config.method_name}"
print(", ".join(f"{name} {version(name)}" for name in names) + f"; {methods} import")
EOF
echo "nerfstudio environment ready after $((SECONDS - start)) s"

python -m pytest tests/nerfstudio -q -p no:cacheprovider
echo "nerfstudio integration: $((SECONDS - start)) s in all"
