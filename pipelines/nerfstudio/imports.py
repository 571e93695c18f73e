"""The one place nerfstudio is imported from: a clear message when it is not installed."""

from __future__ import annotations

import importlib
from types import ModuleType

NERFSTUDIO_VERSION = "1.1.5"
INSTALL_HINT = (
    f"pip install torch==2.13.0 && pip install nerfstudio=={NERFSTUDIO_VERSION} && pip install -e . "
    "(in a virtual environment of its own; .ci/nerfstudio.sh shows the whole recipe)"
)


def require_nerfstudio() -> ModuleType:
    """Imports nerfstudio, or raises ImportError saying how to install it."""
    try:
        return importlib.import_module("nerfstudio")
    except ImportError as error:
        raise ImportError(
            f"pipelines.nerfstudio needs nerfstudio {NERFSTUDIO_VERSION}, which is not installed ({error}). "
            f"Install it with: {INSTALL_HINT}"
        ) from error
