"""The private names lregloss relies on fail loudly when missing, and read what they claim to."""

import pytest
import torch
from torch import nn

from lregloss.private_names import PrivateNameError, gradients_are_scaled, loss_scale, require, skipped_step_flag


def test_a_missing_private_name_raises_naming_it_and_the_tested_releases():
    class Renamed:
        _kept = 1

    require(Renamed, "_kept")
    with pytest.raises(PrivateNameError, match=r"Renamed\._gone, which the installed release lacks .*pytorch-lightning>=2.6,<2.7"):
        require(Renamed, "_kept", "_gone")


def test_gradients_count_as_scaled_until_unscaled():
    weight = nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    assert not gradients_are_scaled(None, optimizer)
    assert not gradients_are_scaled(torch.amp.GradScaler("cpu", enabled=False), optimizer)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    scaler.scale(weight.sum()).backward()
    assert gradients_are_scaled(scaler, optimizer)
    assert loss_scale(scaler).item() == 8.0 and loss_scale(scaler).shape == ()
    scaler.unscale_(optimizer)
    assert not gradients_are_scaled(scaler, optimizer)
    assert torch.equal(weight.grad, torch.ones(3))


def test_the_skipped_step_flag_is_set_only_inside_a_fused_step_gradscaler_calls():
    weight = nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=0.1, fused=True)
    seen = []
    optimizer.register_step_post_hook(lambda opt, args, kwargs: seen.append(skipped_step_flag(opt)))
    scaler = torch.amp.GradScaler("cpu")
    for value in (float("inf"), 1.0):
        optimizer.zero_grad()
        scaler.scale(weight.sum() * value).backward()
        scaler.step(optimizer)
        scaler.update()
    assert [flag.item() for flag in seen] == [1.0, 0.0]
    assert skipped_step_flag(optimizer) is None
