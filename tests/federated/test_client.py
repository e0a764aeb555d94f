"""Client-side training: equivalence with a bare loop, FedProx, and divergence errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from privfed.errors import PrivfedError
from privfed.dp import DPConfig
from privfed.federated import engine as engine_module
from privfed.federated import run_training
from privfed.federated.client import client_round, train_local
from privfed.federated.seeding import generator, seeded
from privfed.federated.strategy import FedAvg, LocalSettings
from privfed.io import load_tensors, read_jsonl
from privfed.models import build_model

from .conftest import make_tiny_split, tiny_config


def test_one_client_one_round_fedavg_equals_plain_training(dataset, tmp_path):
    # bitwise, so in the plain loop's memory layout (channels-last trains the same up to rounding: tested below)
    config = tiny_config(num_clients=1, rounds=1, momentum=0.9, channels_last=False)
    split = make_tiny_split(dataset, 1, sizes=[20])
    run_training(config, tmp_path / "run", progress=False, dataset=dataset, split=split)
    fed = load_tensors(tmp_path / "run" / "models" / "global.safetensors")

    with seeded(config.seed, "init", "global"):
        model = build_model("simple", 2, 32, 16)
    images, labels = dataset.load(split.clients[0])
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    order = torch.randperm(20, generator=generator(config.seed, "data", 1, 0))
    for start in range(0, 20, config.batch_size):
        idx = order[start : start + config.batch_size]
        opt.zero_grad()
        F.cross_entropy(model(images[idx]), labels[idx]).backward()
        opt.step()
    for name, tensor in model.state_dict().items():
        assert torch.equal(fed[name], tensor), name


def _prox_run(dataset, mu):
    torch.manual_seed(0)
    model = build_model("simple", 2, 32, 16)
    received = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = dataset.load(dataset.ids[:24])
    settings = LocalSettings(epochs=3, batch_size=8, lr=0.1, optimizer="sgd", momentum=0.0, mu=mu)
    update = client_round(0, model, received, images, labels, settings, generator(0, "data"), FedAvg().payload)
    return torch.sqrt(sum(((update.tensors[k] - received[k]) ** 2).sum() for k in received)).item(), update


def test_fedprox_mu_zero_is_fedavg_and_mu_positive_stays_closer(dataset, tmp_path):
    split = make_tiny_split(dataset, 2)
    a = run_training(tiny_config(algorithm="fedavg"), tmp_path / "a", progress=False, dataset=dataset, split=split)
    b = run_training(tiny_config(algorithm="fedprox", mu=0.0), tmp_path / "b", progress=False, dataset=dataset, split=split)
    ga = load_tensors(tmp_path / "a" / "models" / "global.safetensors")
    gb = load_tensors(tmp_path / "b" / "models" / "global.safetensors")
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert a["global_test_accuracy"] == b["global_test_accuracy"]

    free, _ = _prox_run(dataset, 0.0)
    held, _ = _prox_run(dataset, 5.0)
    assert 0 < held < free


def test_nan_loss_names_client_and_round_and_keeps_earlier_rounds(dataset, tmp_path, monkeypatch):
    real = engine_module.client_round

    def poisoned(k, model, received, *args, server_round=None, **kwargs):
        if k == 1 and server_round == 2:
            received = {name: torch.full_like(t, float("nan")) if t.is_floating_point() else t for name, t in received.items()}
        return real(k, model, received, *args, server_round=server_round, **kwargs)

    monkeypatch.setattr(engine_module, "client_round", poisoned)
    with pytest.raises(PrivfedError, match=r"client 1, round 2: training loss became nan"):
        run_training(tiny_config(rounds=3), tmp_path / "run", progress=False, dataset=dataset, split=make_tiny_split(dataset, 2))
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["round"] for r in rows] == [1]
    assert (tmp_path / "run" / "checkpoints" / "state.json").is_file()


def test_balanced_class_weights_make_each_class_pull_equally():
    from privfed.federated.client import class_weights, train_local

    labels = torch.tensor([0] * 6 + [1] * 2)
    weights = class_weights(labels)
    assert torch.allclose(weights, torch.tensor([8 / 12, 8 / 4]))  # n / (classes x n_c)
    assert torch.isclose(weights[labels].mean(), torch.tensor(1.0))  # the mean loss scale is unchanged
    assert torch.equal(class_weights(torch.tensor([1, 1, 1])), torch.tensor([0.0, 1.0]))  # absent class: 0

    # one full-batch SGD step with balancing equals the hand-weighted loss's step, not the plain one
    torch.manual_seed(0)
    images = torch.rand(8, 3, 32, 32)
    with seeded(0, "init", "x"):
        model = build_model("simple", 2, 32, 16)
    plain = {n: p.detach().clone() for n, p in model.named_parameters()}
    reference = build_model("simple", 2, 32, 16)
    reference.load_state_dict(model.state_dict())
    settings = LocalSettings(epochs=1, batch_size=8, lr=0.1, optimizer="sgd", momentum=0.0, balance_classes=True)
    train_local(model, images, labels, settings, torch.Generator().manual_seed(0))
    loss = (F.cross_entropy(reference(images), labels, reduction="none") * weights[labels]).mean()
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    for (name, p), g in zip(model.named_parameters(), grads):
        assert torch.allclose(p, plain[name] - 0.1 * g, atol=1e-6), name
    unweighted = torch.autograd.grad(F.cross_entropy(reference(images), labels), [reference.classifier.bias])[0]
    assert not torch.allclose(model.classifier.bias, plain["classifier.bias"] - 0.1 * unweighted, atol=1e-4)


def test_mobilenet_trained_with_adam_ranks_the_test_set_in_evaluation_mode():
    """Regression: MobileNetV3 clients predicted one constant (AUC 0.500) in evaluation mode
    while ranking at 0.90 in training mode: BatchNorm's running averages lagged the weights."""
    from privfed.data.sources import open_dataset
    from privfed.data.split import SplitPlan, make_split
    from privfed.federated.evaluation import predict_scores, roc_auc
    from privfed.models import build_model

    data = open_dataset(None, 64)
    split = make_split(data, 4, SplitPlan(kind="fractions", clients_fraction=0.6, server_fraction=0.15, test_fraction=0.25))
    images, labels = data.load(split.clients[0])
    test_images, test_labels = data.load(split.test)
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", image_size=64)
    train_local(model, images, labels, LocalSettings(epochs=2, batch_size=16, lr=1e-3, optimizer="adam",
                                                     balance_classes=True), torch.Generator().manual_seed(0))
    scores = predict_scores(model, test_images, torch.device("cpu"))[:, 1]
    assert scores.std() > 0.05  # without recalibration: 6e-8
    assert roc_auc(scores, test_labels) > 0.75  # without: 0.500; with: 0.88


def _speed_run(precision: str, channels_last: bool, arch: str = "simple"):
    from privfed.data.sources import open_dataset

    data = open_dataset(None, 32)
    ids = list(data.ids)
    images, labels = data.load(ids[:24] + ids[-24:])  # both classes
    with seeded(0, "speed-test"):
        model = build_model(arch, image_size=32, shared_width=16)
    start = {name: t.clone() for name, t in model.state_dict().items()}
    settings = LocalSettings(epochs=1, batch_size=16, lr=1e-3, optimizer="adam", precision=precision,
                             channels_last=channels_last)
    stats = train_local(model, torch.as_tensor(images), torch.as_tensor(labels), settings, torch.Generator().manual_seed(0))
    return model, start, stats


def test_channels_last_changes_the_layout_not_the_training():
    plain, start, _ = _speed_run("fp32", False)
    nhwc, _, _ = _speed_run("fp32", True)
    for name, tensor in nhwc.state_dict().items():
        assert tensor.is_contiguous(), name  # what is saved and sent is in the default layout again
        assert torch.allclose(tensor, plain.state_dict()[name], atol=1e-5, rtol=1e-4), name
    assert not torch.allclose(plain.state_dict()["fc.weight"], start["fc.weight"])  # and it did train


def test_bf16_autocast_trains_close_to_fp32_and_keeps_fp32_weights():
    plain, start, plain_stats = _speed_run("fp32", False)
    half, _, half_stats = _speed_run("bf16", False)
    assert all(t.dtype == torch.float32 for t in half.state_dict().values() if t.is_floating_point())
    # bf16 keeps 8 bits of mantissa: the step moves the weights almost exactly as fp32 does
    moved = plain.state_dict()["fc.weight"] - start["fc.weight"]
    moved_half = half.state_dict()["fc.weight"] - start["fc.weight"]
    cosine = F.cosine_similarity(moved.flatten(), moved_half.flatten(), dim=0)
    assert cosine > 0.95 and half_stats.train_loss == pytest.approx(plain_stats.train_loss, rel=0.05)


def test_speed_settings_are_refused_with_dp_sgd():
    with pytest.raises(PrivfedError, match="--precision bf16 / --channels-last with --dp-level sample"):
        tiny_config(precision="bf16", dp=DPConfig(level="sample", noise_multiplier=1.0)).resolved()
    with pytest.raises(PrivfedError, match=r"--precision: unknown precision 'bf61' \(did you mean 'bf16'\?\)"):
        tiny_config(precision="bf61").resolved()
    with pytest.raises(PrivfedError, match="--channels-last with --dp-level sample"):
        tiny_config(channels_last=True, dp=DPConfig(level="sample", noise_multiplier=1.0)).resolved()
    # left unset: channels-last where it is allowed (measured faster, same training), the default layout under DP-SGD
    assert tiny_config().resolved().channels_last is True
    assert tiny_config(dp=DPConfig(level="sample", noise_multiplier=1.0)).resolved().channels_last is False
    tiny_config(precision="bf16", channels_last=True, dp=DPConfig(level="client", noise_multiplier=1.0)).resolved()
