"""--init-from: a new run starts from the weights of another run's checkpoint (e.g. mimic3d from eg3d)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipelines.engine.checkpoints import load_training_state

INITIALIZED_NETWORKS = ("G", "G_ema", "D", "D_patch")
"""State-dict entries of a pipeline whose weights --init-from copies where names and shapes match."""


def init_from_checkpoint(path: Path) -> Path:
    """The checkpoint --init-from names: a checkpoint directory, or a run folder's newest usable checkpoint."""
    from pipelines.engine.trainer import _checkpoint_problem, _newest_usable_checkpoint

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--init-from {path} is not a directory: pass a run folder or a checkpoint "
                                "directory (RUN/checkpoints/step-*) of an eg3d or mimic3d run")
    if (path / "checkpoints").is_dir():
        return _newest_usable_checkpoint(path, f"--init-from {path}")
    problem = _checkpoint_problem(path)
    if problem is not None:
        raise ValueError(f"--init-from {path}: {problem}")
    return path


def copy_matching(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> tuple[int, int]:
    """Copies the tensors of ``state`` whose names ``module`` has; (copied, tensors in module).

    A name both have with different shapes means other sizes: ValueError naming the first few.
    """
    own = module.state_dict()
    common = [k for k in state if k in own]
    conflicts = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}" for k in common
                 if tuple(state[k].shape) != tuple(own[k].shape)]
    if conflicts:
        raise ValueError(
            f"{what}: {len(conflicts)} tensors have other shapes than this run's ({'; '.join(conflicts[:3])}); "
            "start from a run of the same sizes (--model.generator.* and --model.discriminator.* as in its config.json)"
        )
    with torch.no_grad():
        for name in common:
            own[name].copy_(state[name].to(own[name].device, own[name].dtype))
    return len(common), len(own)


def initialize_from(pipeline: Any, path: Path, device: torch.device) -> list[str]:
    """Loads the weights of G, G_ema, D (and D_patch) from ``path`` into ``pipeline`` by name; the lines to print.

    Tensors only one side has are left as they are (mimic3d's 3D-aware branch from an eg3d run).
    Optimizer states, RNG states and progress are not taken: the run starts at step 0. Raises
    ValueError when a shared tensor has another shape or no generator tensor is shared.
    """
    checkpoint = init_from_checkpoint(path)
    state = load_training_state(checkpoint, map_location=device)["pipeline"]
    lines, generator_copied = [], 0
    for name in INITIALIZED_NETWORKS:
        module = getattr(pipeline, name, None)
        if module is None or name not in state:
            continue
        copied, total = copy_matching(module, state[name], f"--init-from {path}: {name}")
        generator_copied += copied if name == "G" else 0
        lines.append(f"init-from: {name} {copied} of {total} tensors from {checkpoint}")
    if generator_copied == 0:
        raise ValueError(f"--init-from {path}: {checkpoint} shares no generator tensor with this run's generator; "
                         "start from an eg3d or mimic3d run")
    return lines
