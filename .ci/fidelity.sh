#!/usr/bin/env bash
# CI: our Inception-v3 (pipelines/evaluation/inception.py) against torch-fidelity's FID extractor, and our
# LPIPS-VGG (pipelines/evaluation/lpips.py) against the lpips package on shared random weights.
#
# torch-fidelity imports torchvision when its package loads (its CLIP, VGG and DINOv2 extractors do),
# and torchvision 0.28.0, the release for torch 2.13.0, exists only as a CUDA build; so the check runs
# in a virtual environment of its own, with CPU torch and the torchvision import hook of
# .ci/torchvision_cpu_hook.sh, and EPIGRAF_REQUIRE_TORCH_FIDELITY=1 makes the test fail, not skip,
# when torch-fidelity does not import.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/torchvision_cpu_hook.sh
. .ci/torchvision_cpu_hook.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
. "$scratch/venv/bin/activate"

# CPU torch first; naming it again in every later install keeps pip from replacing it with the CUDA
# build (GBs of nvidia packages).
pip install -q torch==2.13.0
pip install -q torch==2.13.0 torchvision==0.28.0 torch-fidelity==0.4.0 lpips==0.1.4
install_torchvision_hook
pip install -q torch==2.13.0 -e ".[test]"
pip check

python - <<'EOF'
from importlib.metadata import version

import torch
import torch_fidelity.feature_extractor_inceptionv3  # noqa: F401  (imports torchvision through the package)
import lpips  # noqa: F401  (imports torchvision)

assert torch.__version__.startswith("2.13.0") and torch.version.cuda is None, torch.__version__
print(", ".join(f"{name} {version(name)}" for name in ("torch", "torchvision", "torch-fidelity", "lpips", "epigraf")))
EOF
echo "torch-fidelity environment ready after $((SECONDS - start)) s"

EPIGRAF_REQUIRE_TORCH_FIDELITY=1 python -m pytest -q -p no:cacheprovider \
    "tests/pipelines/evaluation/test_fid.py::test_matches_torch_fidelity_when_it_is_importable"
echo "torch-fidelity equivalence: $((SECONDS - start)) s in all"

EPIGRAF_REQUIRE_LPIPS=1 python -m pytest -q -p no:cacheprovider \
    "tests/pipelines/evaluation/test_lpips.py::test_matches_the_lpips_package_when_it_is_importable"
echo "lpips equivalence: $((SECONDS - start)) s in all"
