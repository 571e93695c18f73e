#!/usr/bin/env bash
# CI: our LPIPS-VGG (pipelines/evaluation/lpips.py) against the reference lpips package, on shared random weights.
#
# lpips imports torchvision (its trunks come from torchvision.models), and torchvision 0.28.0, the release
# for torch 2.13.0, exists only as a CUDA build; so, as for torch-fidelity (.ci/fidelity.sh), the check runs
# in a virtual environment of its own, with CPU torch and the torchvision import hook of
# .ci/torchvision_cpu_hook.sh, and EPIGRAF_REQUIRE_LPIPS=1 makes the test fail, not skip, when lpips does
# not import. No weights are downloaded: the test builds both networks with random weights.
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

# CPU torch first; naming it again in every later install keeps pip from replacing it with the CUDA build.
pip install -q torch==2.13.0
pip install -q torch==2.13.0 torchvision==0.28.0 lpips==0.1.4
install_torchvision_hook
pip install -q torch==2.13.0 -e ".[test]"
pip check

python - <<'PY'
from importlib.metadata import version

import lpips  # noqa: F401  (imports torchvision)
import torch

assert torch.__version__.startswith("2.13.0") and torch.version.cuda is None, torch.__version__
print(", ".join(f"{name} {version(name)}" for name in ("torch", "torchvision", "lpips", "epigraf")))
PY
echo "lpips environment ready after $((SECONDS - start)) s"

EPIGRAF_REQUIRE_LPIPS=1 python -m pytest -q -p no:cacheprovider \
    "tests/pipelines/evaluation/test_lpips.py::test_matches_the_lpips_package_when_it_is_importable"
echo "lpips equivalence: $((SECONDS - start)) s in all"
