"""`epigraf-export CHECKPOINT --mesh`: marching-cubes meshes with vertex colours, and tri-planes as safetensors."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
import tyro

from pipelines.devices import Device, choose_device
from pipelines.errors import DEBUG_HELP, check_writable_folder, run_command
from pipelines.cli.open_generator import Branch, open_generator, with_class_index
from pipelines.evaluation.meshes import MeshExtractionConfig, extract_meshes, save_mesh
from pipelines.model import latents_from_seeds
from pipelines.progress import progress_bar


@dataclass
class ExportConfig:
    """Export meshes and tri-planes of a trained generator."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run folder (its newest checkpoint), a checkpoint directory, a generator bundle directory or an official EG3D /
    EpiGRAF / Mimic3D .pkl snapshot (converted without running it)."""
    out: Path = Path("export")
    """Output folder."""
    seeds: tuple[int, ...] = (0,)
    """Latent seeds: one mesh / tri-plane file each."""
    mesh: bool = False
    """Write a mesh per seed: marching cubes on the density field."""
    planes: bool = False
    """Write the tri-planes [3, C, R, R] per seed as safetensors (with seed and truncation in the metadata)."""
    format: Literal["ply", "obj", "glb"] = "ply"
    """Mesh file format."""
    resolution: int = 256
    """Marching-cubes grid points per side of the scene box."""
    level: float = 10.0
    """Density iso-level of the surface (EG3D's 10); lower it when meshes come out empty."""
    chunk_size: int = 262144
    """Density queries per field call; lower it when memory runs out."""
    colors: bool = True
    """Store the field's colour at each vertex."""
    branch: Branch = "3d"
    """Which branch of a mimic3d generator gives the meshes' field: 3d (coarse plus detail planes, what its direct
    render shows) or 2d (the coarse planes alone, what its EG3D branch renders). Other pipelines have one
    branch and take only 3d."""
    truncation_psi: float = 1.0
    """Truncation towards the mean w (1: none)."""
    truncation_cutoff: int | None = None
    """Truncate only the first N ws (None: all)."""
    class_index: int | None = None
    """Class to generate with a class-conditional generator, 0..num_classes-1 (None: each seed in its own class, the
    same one in every command)."""
    device: Device = "auto"
    """cpu, cuda, or auto (cuda when available)."""
    progress: bool = True
    """Show a progress bar on stderr (also off with $EPIGRAF_NO_PROGRESS=1)."""


def run(config: ExportConfig) -> list[Path]:
    if not (config.mesh or config.planes):
        raise SystemExit("error: nothing to export: pass --mesh and/or --planes")
    if not config.seeds:
        raise SystemExit("error: --seeds needs at least one seed")
    try:
        mesh_config = MeshExtractionConfig(resolution=config.resolution, level=config.level,
                                           chunk_size=config.chunk_size,
                                           colors=config.colors)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    check_writable_folder(config.out, "--out")
    device = choose_device(config.device)
    model = open_generator(config.checkpoint, device, config.branch).with_options(
        truncation_psi=config.truncation_psi, truncation_cutoff=config.truncation_cutoff)
    model = with_class_index(model, config.class_index, config.checkpoint)
    mesh_config.box_half_size = model.box_half_size
    center = model.cameras.center_pose()  # camera-conditioned generators see the distribution's centre pose
    paths: list[Path] = []
    with progress_bar(len(config.seeds), "exporting", "seed", config.progress) as bar:
        for seed, z in zip(config.seeds, latents_from_seeds(config.seeds, model.z_dim)):
            with torch.no_grad():
                scene = model.synthesize(model.mapping(z[None], center))
            if config.planes:
                paths.append(save_planes(scene[0], config.out / f"seed{seed:04d}_planes.safetensors", seed, config))
            if config.mesh:
                mesh = extract_meshes(model.field(scene), 1, mesh_config, device)[0]
                if len(mesh.faces) == 0:
                    bar.write(f"seed {seed}: empty mesh at level {config.level}; try a lower --level", file=sys.stderr)
                paths.append(save_mesh(mesh, config.out / f"seed{seed:04d}.{config.format}"))
            bar.update(1)
    return paths


def save_planes(planes: torch.Tensor, path: Path, seed: int, config: ExportConfig) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"seed": str(seed), "truncation_psi": str(config.truncation_psi),
                "checkpoint": str(config.checkpoint), "layout": json.dumps(["plane", "channel", "row", "column"])}
    save_file({"planes": planes.detach().cpu().contiguous()}, str(path), metadata=metadata)
    return path


def export_command(argv: list[str]) -> int:
    config = tyro.cli(ExportConfig, args=argv, prog="epigraf-export",
                      description="Export marching-cubes meshes (PLY/OBJ/GLB) and tri-planes of a trained generator. "
                      f"{DEBUG_HELP}")
    for path in run(config):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """epigraf-export; bad input ends it with one line ``error: ...`` (see :mod:`pipelines.errors`)."""
    return run_command(export_command, argv)


if __name__ == "__main__":
    sys.exit(main())
