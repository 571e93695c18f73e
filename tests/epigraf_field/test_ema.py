"""EMA helpers."""

import pytest
import torch
from torch import nn


from epigraf_field.ema import copy_params_and_buffers, ema_update


def make(value: float) -> nn.Module:
    m = nn.BatchNorm1d(3)
    with torch.no_grad():
        m.weight.fill_(value)
        m.running_mean.fill_(value)
    return m


def test_ema_update_and_copy():
    ema, model = make(0.0), make(1.0)
    ema_update(ema, model, beta=0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 0.25))
    assert torch.equal(ema.running_mean, model.running_mean)  # buffers are copied, not averaged
    copy_params_and_buffers(model, ema)
    assert torch.equal(ema.weight, model.weight)
    with pytest.raises(ValueError, match="beta"):
        ema_update(ema, model, beta=1.5)
    with pytest.raises(ValueError, match="weight"):
        copy_params_and_buffers(nn.Identity(), ema)
