# shellcheck shell=bash
# Sourced by the CI scripts whose environments need torchvision next to CPU torch (.ci/nerfstudio.sh,
# .ci/fidelity.sh); defines install_torchvision_hook, run with the target environment active.
#
# torchvision 0.28.0 exists only as a CUDA build: its compiled operators cannot load next to a CPU
# torch, and its import then fails registering fake kernels for two of them. Declaring those two
# operators before torchvision is first imported lets it import; its other operators stay
# unavailable, as torchvision itself reports; nerfstudio and torch-fidelity need none of them.
install_torchvision_hook() {
    local site
    site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    cat > "$site/_torchvision_cpu_ops.py" <<'EOF'
"""Lets the CUDA-built torchvision wheel import next to a CPU-only torch (see .ci/torchvision_cpu_hook.sh)."""

import importlib.abc
import importlib.util
import os
import sys

_LIBRARY = None


def _declare_missing_ops(package_dir):
    global _LIBRARY
    import torch

    try:
        torch.ops.load_library(os.path.join(package_dir, "_C.so"))
        return
    except (ImportError, OSError):
        pass
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for name in ("nms", "qnms"):
        _LIBRARY.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            _declare_missing_ops(list(spec.submodule_search_locations)[0])
        return spec


sys.meta_path.insert(0, _BeforeTorchvision())
EOF
    echo "import _torchvision_cpu_ops" > "$site/_torchvision_cpu_ops.pth"
}
