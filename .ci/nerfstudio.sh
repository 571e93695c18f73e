#!/usr/bin/env bash
# CI: the nerfstudio integration in a virtual environment of its own (nerfstudio 1.1.5 pins
# viser 0.2.7 and nerfacc 0.5.2), with CPU torch, then tests/nerfstudio.
#
# NERFSTUDIO_INSTALL=lean (default) installs nerfstudio with the dependencies that its training,
# fields, samplers, renderers and viewer import, and leaves out the ones only its exporters, data
# processing, dataset downloads, notebooks and third-party loggers use (open3d, pymeshlab,
# jupyterlab, wandb, ...: about 1 GB, most of the install time). NERFSTUDIO_INSTALL=full runs
# `pip install nerfstudio==1.1.5` with everything, as a user would.
# NERFSTUDIO_VENV=DIR keeps the environment in DIR (reused with NERFSTUDIO_REUSE=1) instead of a
# temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/torchvision_cpu_hook.sh
. .ci/torchvision_cpu_hook.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

LEFT_OUT="av comet-ml cryptography gdown h5py ipywidgets jupyterlab mediapy nuscenes-devkit open3d plotly pymeshlab pyngrok python-socketio timm wandb xatlas"

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
    fi
    install_torchvision_hook
}

if [[ "${NERFSTUDIO_REUSE:-0}" == 1 && -x "$venv/bin/ns-train" ]]; then
    . "$venv/bin/activate"
    pip install -q --no-deps -e .
else
    install_environment
fi

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
from pipelines.nerfstudio.method import epigraf_invert

assert torch.__version__.startswith("2.13.0") and torch.version.cuda is None, torch.__version__
names = ("torch", "torchvision", "numpy", "nerfacc", "viser", "tyro", "nerfstudio", "epigraf")
print(", ".join(f"{name} {version(name)}" for name in names) + f"; {epigraf_invert.config.method_name} imports")
EOF
echo "nerfstudio environment ready after $((SECONDS - start)) s"

python -m pytest tests/nerfstudio -q -p no:cacheprovider
echo "nerfstudio integration: $((SECONDS - start)) s in all"
