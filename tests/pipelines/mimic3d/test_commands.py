"""Mimic3D end to end: `--init-from` through the launcher (never again on resume), and 2 gloo processes in lockstep."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import pipelines.engine.init_from as init_from_module
from pipelines.cli.train import main
from pipelines.engine.data_loader import BatchStream
from pipelines.engine.distributed import shutdown
from pipelines.engine.launch import run_training
from pipelines.mimic3d.pipeline import Mimic3dPipeline
from pipelines.pipeline import Progress
from tests.integration.test_train_command import _write_eg3d_folder
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.mimic3d.tiny import tiny_mimic3d_config
from tests.pipelines.tiny import TinyDataset
from tests.pipelines.gloo import free_port, join_gloo_group


@pytest.mark.slow
def test_init_from_an_eg3d_run_applies_once_and_a_resumed_run_never_again(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = _write_eg3d_folder(tmp_path / "data")
    eg3d = tiny_eg3d_config(out=tmp_path / "eg3d", kimg=0.004)
    eg3d.data = data
    run_training(eg3d)
    config = tiny_mimic3d_config(out=tmp_path / "mimic3d", kimg=0.004)
    config.data, config.init_from = data, str(tmp_path / "eg3d")
    run_training(config)
    output = capsys.readouterr().out
    assert "init-from: G " in output and "init-from: D " in output
    calls = []
    monkeypatch.setattr(init_from_module, "initialize_from", lambda *args: calls.append(args) or [])
    assert main(["--resume", "latest", "--out", str(tmp_path / "mimic3d"), "--kimg", "0.006", "--device", "cpu"]) == 0
    assert "resuming from" in capsys.readouterr().out and calls == []
    assert (tmp_path / "mimic3d" / "checkpoints" / "step-000000000006").is_dir()


def _worker(rank: int, world_size: int, port: int, result_dir: str) -> None:
    context = join_gloo_group(rank, world_size, port)
    config = tiny_mimic3d_config(batch=4, stage_3d_kimg=0.004)  # step 0 in stage 1, step 1 in the 3D stage
    dataset = TinyDataset()
    pipeline = Mimic3dPipeline(config, torch.device("cpu"), dataset, context)
    stream = BatchStream(dataset, config.batch, config.seed, context.rank, context.world_size)
    keys = []
    for step in range(2):
        metrics = pipeline.train_step(stream.batch(step, torch.device("cpu")), Progress(step, step * config.batch))
        keys.append(sorted(metrics))
    flat = torch.cat([p.detach().flatten() for m in pipeline.modules() for p in m.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    torch.save({"gathered": gathered, "keys": keys}, os.path.join(result_dir, f"rank{rank}.pt"))
    del pipeline
    shutdown(context)


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_parameters_through_both_stages(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    result = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert "G3d/imitation" not in result["keys"][0] and "D3d/loss" in result["keys"][1]
    first, second = result["gathered"]
    assert torch.equal(first, second), "G, G_ema, D or D_patch differ across ranks after a stage-1 and a 3D step"
