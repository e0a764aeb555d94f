"""Analytic pieces: linear-layer input recovery, disaggregation, iDLG and counted labels."""

from __future__ import annotations

import torch

from attacks.inversion import ClientStep, Observation
from attacks.inversion.labels import count_labels, idlg_label, recover_labels
from attacks.inversion.linear import recover_linear_inputs
from attacks.inversion.simulate import client_update
from privfed.models import build_model


def test_shared_input_is_recovered_from_one_sample_to_1e_5(simple_model, mri):
    images, labels = mri(1, seed=1)
    update = client_update(simple_model, images, labels, ClientStep(lr=0.01), ["shared.weight", "shared.bias"])
    recovery = recover_linear_inputs(update["shared.weight"], update["shared.bias"], 1)
    truth = simple_model.shared_input(images).detach()
    assert float((recovery.inputs - truth).norm() / truth.norm()) < 1e-5


def test_fc_input_is_recovered_exactly_over_several_steps_at_batch_one(simple_model, mri):
    """The lr and the step count cancel in the ratio; the input drifts only through fc itself (not at all)."""
    images, labels = mri(1, seed=2)
    update = client_update(simple_model, images, labels, ClientStep(lr=0.05, local_steps=3), ["fc.weight", "fc.bias"])
    recovery = recover_linear_inputs(update["fc.weight"], update["fc.bias"], 1)
    # The backbone changes during the 3 steps, so the recovered input is a weighted mix of nearby features.
    truth = torch.flatten(simple_model.backbone(images), 1).detach()
    assert float((recovery.inputs - truth).norm() / truth.norm()) < 0.05


def test_disaggregation_recovers_samples_that_own_rows():
    """Two inputs, each alone on a disjoint half of the rows (plus one mixed row): both come back exactly."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 10, generator=generator)
    delta = torch.zeros(2, 9)
    delta[0, :4] = torch.rand(4, generator=generator) + 0.5
    delta[1, 4:8] = -(torch.rand(4, generator=generator) + 0.5)
    delta[:, 8] = torch.tensor([0.7, 0.4])
    weight_update, bias_update = delta.t() @ x, delta.sum(0)
    for one_step in (True, False):  # tight tolerances first, or one cosine-0.995 pass for observed rounds
        recovery = recover_linear_inputs(weight_update, bias_update, 2, one_step=one_step)
        assert recovery.clusters_found == 2
        errors = torch.cdist(recovery.inputs, x)
        assert float(errors.min(1).values.max()) < 1e-5
        assert sorted(errors.argmin(1).tolist()) == [0, 1]


def test_idlg_recovers_every_batch_one_label():
    torch.manual_seed(1)
    model = build_model("simple", num_classes=4, image_size=32, shared_width=32).eval()
    generator = torch.Generator().manual_seed(2)
    for trial in range(30):
        images = torch.rand(1, 3, 32, 32, generator=generator)
        label = torch.randint(0, 4, (1,), generator=generator)
        step = ClientStep(lr=float(torch.rand(1, generator=generator)) * 0.1 + 1e-3, local_steps=1 + trial % 3)
        update = client_update(model, images, label, step, ["classifier.bias", "classifier.weight"])
        observation = Observation(model, update, step, 1, 32, 4)
        assert int(recover_labels(observation)) == int(label), trial
        # The weight rows (inputs are post-ReLU, non-negative) point the same way.
        assert idlg_label(-update["classifier.weight"].sum(1)) == int(label)


def test_count_labels_solves_the_bias_gradient_equation():
    """mean bias gradient = mean p - counts/N; with known mean p the counts come back."""
    probs = torch.tensor([0.3, 0.5, 0.2])
    counts = torch.tensor([1, 5, 2])
    gradient = probs - counts / 8
    labels = count_labels(gradient, 8, probs)
    assert torch.bincount(labels, minlength=3).tolist() == counts.tolist()


def test_disaggregation_keeps_mixed_rows_out_when_inputs_are_nearly_parallel():
    """ReLU features of two brain slices have cosine ~0.99: a mixed row is then as close to either
    input as the old cosine-0.995 clustering tolerated, and averaging it in biased both. Pure rows
    agree to float precision, so the tight tolerance keeps each input exact."""
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(10, generator=generator, dtype=torch.float64) + 1.0
    x = torch.stack([base, base + 0.05 * torch.rand(10, generator=generator, dtype=torch.float64)])
    assert float(torch.nn.functional.cosine_similarity(x[0], x[1], dim=0)) > 0.995
    delta = torch.zeros(2, 12, dtype=torch.float64)
    delta[0, :3] = 1.0
    delta[1, 3:6] = 1.0
    delta[:, 6:] = torch.rand(2, 6, generator=generator, dtype=torch.float64) + 0.5  # six mixed rows, strongest
    weight_update, bias_update = delta.t() @ x, delta.sum(0)
    recovery = recover_linear_inputs(weight_update, bias_update, 2)
    errors = torch.cdist(recovery.inputs, x)
    assert recovery.clusters_found == 2 and sorted(errors.argmin(1).tolist()) == [0, 1]
    assert float(errors.min(1).values.max() / x.norm(dim=1).min()) < 1e-12


def test_disaggregation_tells_mixtures_from_pure_inputs_when_the_gradient_factorises():
    """delta_nj = s_n w_j a_nj (a two-class head after a ReLU): every row with the same active set
    has the same ratio, so the all-active mixture is the largest tight cluster. Pure inputs are
    the clusters with minimal supports (ReLU zeros), and they come back exactly."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 40, generator=generator, dtype=torch.float64)
    x[x < 0.4] = 0.0  # ReLU features: exact zeros, different supports
    s = torch.tensor([0.7, -0.4, 0.5], dtype=torch.float64)
    w = torch.rand(30, generator=generator, dtype=torch.float64) + 0.5
    active = torch.zeros(3, 30, dtype=torch.bool)
    active[:, :15] = True  # fifteen rows where every sample is active: the biggest cluster, a mixture
    for n in range(3):
        active[n, 15 + 5 * n : 20 + 5 * n] = True  # five pure rows each
    delta = s[:, None] * w[None, :] * active
    weight_update, bias_update = delta.t() @ x, delta.sum(0)
    recovery = recover_linear_inputs(weight_update, bias_update, 3)
    errors = torch.cdist(recovery.inputs, x) / x.norm(dim=1)
    assert recovery.clusters_found == 3 and sorted(errors.argmin(1).tolist()) == [0, 1, 2]
    assert float(errors.min(1).values.max()) < 1e-12
