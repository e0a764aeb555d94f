"""The convolutional decoder: it starts as the linear one, learns what that misses on real slices, and is seeded."""

from __future__ import annotations

import pytest
import torch

from attacks.inversion import posterior as posterior_module
from attacks.inversion.conv_decoder import (CLIP, CLIP_MOMENTUM, SCALE_FLOOR, ConvDecoder, DecoderEnsemble, ResidualNet,
                                           _clip_relative, training_precision)
from attacks.inversion.local_decoder import MapGeometry, NormalEquations, cell_maps
from attacks.inversion.posterior import FeaturePosterior, _embed
from attacks.metrics import psnr
from privfed.models import build_model

#: PSNR the trained network adds to the linear decoder on 12 unseen slices at 128x128 (128 server
#: images, 8 epochs; the linear decoder 24.35 dB); measured +1.19 dB (+1.04 with plain ReLU units)
CONV_FLOOR_DB = 0.5


def simple(size: int):
    torch.manual_seed(0)
    return build_model("simple", num_classes=2, image_size=size, shared_width=1024).eval()


def linear_decoder(model, size: int, train: torch.Tensor):
    geometry = MapGeometry.of(model, size)
    with torch.no_grad():
        embedded = _embed(torch.flatten(model.backbone(train), 1))
    grey = train[:, :1].flatten(1)
    return NormalEquations.of(embedded, grey, geometry, 1).decoder(grey.mean(0), ridge=1e-3), embedded, grey


def test_an_untrained_network_is_the_linear_decoder(server):
    model, size = simple(112), 112
    local, embedded, _ = linear_decoder(model, size, server(size)[:16])
    untrained = ConvDecoder(local, ResidualNet(local.geometry, 1), epochs=0)
    assert torch.allclose(untrained.predict(embedded[:4]), local.predict(embedded[:4]).double())


def test_an_ensemble_predicts_the_mean_of_its_networks_and_reports_each(server):
    """Two networks with hand-set last layers: the ensemble's image is their pixelwise mean, exactly."""
    model, size = simple(112), 112
    local, embedded, _ = linear_decoder(model, size, server(size)[:16])
    members = []
    for shift in (0.02, -0.06):
        net = ResidualNet(local.geometry, 1)
        torch.nn.init.constant_(net.body[-1].bias, shift)  # each block's pixels moved by ``shift``
        members.append(ConvDecoder(local, net, epochs=0, best_epoch=1, loss_by_epoch=[shift**2]))
    ensemble = DecoderEnsemble(members, [0, 1])
    expected = local.predict(embedded[:3]).double() - 0.02  # (0.02 - 0.06) / 2
    assert torch.allclose(ensemble.predict(embedded[:3]), expected, atol=1e-6)
    described = ensemble.describe()
    assert described["networks"] == 2 and [m["seed"] for m in described["members"]] == [0, 1]
    assert described["loss_by_epoch"] == members[0].describe()["loss_by_epoch"]  # the first network's, as a single one's


def test_training_learns_what_the_linear_decoder_misses_on_unseen_slices(server, mri):
    model, size = simple(128), 128
    train = server(size)
    local, embedded, grey = linear_decoder(model, size, train)
    images, _ = mri(12, size=size, seed=3)
    with torch.no_grad():
        held = _embed(torch.flatten(model.backbone(images), 1))
    conv = ConvDecoder.train(local, embedded, grey, "cpu", seed=0, epochs=8)

    def mean_psnr(flat):
        guesses = flat.float().view(-1, 1, size, size).clamp(0, 1).expand(-1, 3, -1, -1)
        return sum(psnr(g, image) for g, image in zip(guesses, images)) / len(images)

    assert mean_psnr(conv.predict(held)) - mean_psnr(local.predict(held)) > CONV_FLOOR_DB


def test_training_is_deterministic_per_seed(server):
    model, size = simple(112), 112
    local, embedded, grey = linear_decoder(model, size, server(size)[:32])
    first, second, other = (ConvDecoder.train(local, embedded, grey, "cpu", seed=s, epochs=1) for s in (0, 0, 1))
    assert all(torch.equal(a, b) for a, b in zip(first.net.state_dict().values(), second.net.state_dict().values()))
    assert not torch.equal(first.net.body[0].weight, other.net.body[0].weight)


def test_no_input_channel_is_blown_up_past_the_scale_floor(server):
    """A channel that almost never fires would otherwise enter at hundreds of its deviations when it does."""
    model, size = simple(112), 112
    local, embedded, grey = linear_decoder(model, size, server(size)[:32])
    scale = ConvDecoder.train(local, embedded, grey, "cpu", seed=0, epochs=1).net.scale.flatten()
    assert float(scale.min()) >= SCALE_FLOOR * float(scale.median()) - 1e-5
    spread = cell_maps(embedded.float(), local.geometry).std((0, 2, 3))
    assert float(spread.min()) < SCALE_FLOOR * float(spread.median())  # the floor binds on this model


def test_a_gradient_spike_is_cut_to_the_clip_factor_times_the_running_norm():
    """Hand-computed: gradients 6 and 8 have norm 10; against a running norm of 1 at factor 2 they are cut to norm 2."""
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))

    def spike():
        a.grad, b.grad = torch.tensor([6.0]), torch.tensor([8.0])

    spike()
    assert float(_clip_relative([a, b], None, 2.0, active=True)) == 10.0  # the first step only measures
    assert float(a.grad) == 6.0
    running = _clip_relative([a, b], torch.tensor(1.0), 2.0, active=False)  # warm-up: measured, not cut
    assert float(a.grad) == 6.0 and abs(float(running) - (1 + (1 - CLIP_MOMENTUM) * 9)) < 1e-6
    running = _clip_relative([a, b], torch.tensor(1.0), 2.0, active=True)
    assert torch.allclose(torch.cat([a.grad, b.grad]), torch.tensor([1.2, 1.6]))
    assert abs(float(running) - (1 + (1 - CLIP_MOMENTUM) * 1)) < 1e-6  # the cut norm, not the spike, enters the mean
    spike()
    small = _clip_relative([a, b], torch.tensor(100.0), 2.0, active=True)  # under the limit: untouched
    assert float(a.grad) == 6.0 and float(small) < 100.0


def test_the_result_says_how_the_network_was_trained(server):
    """Schedule, cut and each epoch's loss are in the result; the kept epoch is the one of lowest loss."""
    model, size = simple(112), 112
    local, embedded, grey = linear_decoder(model, size, server(size)[:32])
    described = ConvDecoder.train(local, embedded, grey, "cpu", seed=0, epochs=3, learning_rate=1e-3).describe()
    assert described["learning_rate"] == 1e-3 and described["clip"] == CLIP > 0
    losses = described["loss_by_epoch"]
    assert len(losses) == 3 and described["best_epoch"] == 1 + losses.index(min(losses))


def test_bf16_training_follows_fp32_training(server):
    """bfloat16 autocast (the default where the hardware runs it natively) must not change the fit: both paths run everywhere."""
    model, size = simple(112), 112
    local, embedded, grey = linear_decoder(model, size, server(size)[:32])
    fp32, bf16 = (ConvDecoder.train(local, embedded, grey, "cpu", seed=0, epochs=3, precision=p) for p in ("fp32", "bf16"))
    assert fp32.precision == "fp32" and bf16.describe()["precision"] == "bf16"
    # same seed, data and schedule: the two runs follow one trajectory up to bfloat16's rounding
    for a, b in zip(fp32.loss_by_epoch, bf16.loss_by_epoch):
        assert abs(a - b) < 0.01 * a
    assert not torch.equal(fp32.net.body[0].weight, bf16.net.body[0].weight)  # bf16 really ran


def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively():
    assert training_precision(torch.device("cpu"), "fp32") == "fp32"
    assert training_precision(torch.device("cpu"), "bf16") == "bf16"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert training_precision(torch.device("cpu"), "auto") == ("bf16" if native else "fp32")
    assert training_precision(torch.device("meta"), "auto") == "fp32"
    with pytest.raises(ValueError, match="fp16"):
        training_precision(torch.device("cpu"), "fp16")


def test_training_keeps_the_epoch_of_lowest_loss_when_a_run_breaks_down(server, monkeypatch):
    """At a learning rate far too high the loss blows up; an earlier epoch's finite weights are returned."""
    model, size = simple(112), 112
    local, embedded, grey = linear_decoder(model, size, server(size)[:32])
    monkeypatch.setattr("attacks.inversion.conv_decoder.LEARNING_RATE", 3.0)
    broken = ConvDecoder.train(local, embedded, grey, "cpu", seed=0, epochs=4)
    assert broken.best_epoch is not None and broken.best_epoch < 4
    assert torch.isfinite(broken.predict(embedded[:4])).all()


def test_the_posterior_keeps_the_network_where_it_beats_the_local_decoder_held_out(server, monkeypatch):
    """Kept here (measured held out: +4.59 dB over the mean image against +4.38 without), and then it is the guess."""
    monkeypatch.setattr(posterior_module, "MAX_COPIES", 1)
    monkeypatch.setattr("attacks.inversion.conv_decoder.EPOCHS", 4)
    model, size = simple(112), 112
    train = server(size)
    assert len(train) >= posterior_module.CONV_MIN_IMAGES

    def features_of(x):
        return torch.flatten(model.backbone(x), 1)

    fitted = FeaturePosterior.fit(train, features_of, "cpu", seed=0, geometry=MapGeometry.of(model, size))
    scores = fitted.describe()["conv_decoder"]
    assert scores["kept"] is True and scores["held_out_gain_db"] > scores["held_out_gain_db_without"]
    assert scores["held_out"] >= 8 and 0 < scores["weight"] <= 1
    assert scores["networks"] == posterior_module.CONV_NETWORKS == len(fitted.conv.members)
    assert [m["seed"] for m in scores["members"]] == list(range(posterior_module.CONV_NETWORKS))
    by_networks = scores["held_out_gain_db_by_networks"]  # the mean of the first 1, 2, ... networks
    assert len(by_networks) == posterior_module.CONV_NETWORKS and by_networks[-1] == scores["held_out_gain_db"]
    embedded = _embed(features_of(train[:2]))
    kernel = fitted.mean + posterior_module._kernel(embedded, fitted.anchors, fitted.distance_scale, fitted.gamma) @ fitted.weights
    expected = torch.lerp(kernel, fitted.conv.predict(embedded), fitted.conv_weight)
    assert torch.allclose(fitted.guess(features_of(train[:2])).flatten(1).double(), expected.float().double(), atol=1e-5)


def test_a_network_no_better_held_out_is_dropped(server, monkeypatch):
    """An untrained network is exactly the linear decoder: it ties with it held out, and a tie is not kept."""
    monkeypatch.setattr(posterior_module, "MAX_COPIES", 1)
    monkeypatch.setattr(ConvDecoder, "train", classmethod(
        lambda cls, local, *args, **kwargs: cls(local, ResidualNet(local.geometry, local.image_channels), 0)))
    model, size = simple(112), 112
    fitted = FeaturePosterior.fit(server(size), lambda x: torch.flatten(model.backbone(x), 1), "cpu", seed=0,
                                  geometry=MapGeometry.of(model, size))
    assert fitted.conv is None and fitted.local is not None
    dropped = fitted.describe()["conv_decoder"]  # reported, so a reader sees it was tried and why it is not used
    assert dropped["kept"] is False and dropped["weight"] == 0.0
    assert dropped["held_out_gain_db"] == dropped["held_out_gain_db_without"]
