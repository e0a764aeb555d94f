"""F and F^-1 of partial-weight aggregation."""

import pytest
import torch

from privfed.models.mapping import embedding_matrix, from_common, to_common


@pytest.mark.parametrize("w,h", [(16, 16), (8, 16), (5, 32)])
def test_inverse_of_forward_is_identity_when_w_le_h(w, h):
    weight, bias = torch.randn(w, w), torch.randn(w)
    q = embedding_matrix(w, h, seed=1)
    common_w, common_b = to_common(weight, bias, q)
    assert common_w.shape == (h, h)
    back_w, back_b = from_common(common_w, common_b, q)
    torch.testing.assert_close(back_w, weight, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(back_b, bias, atol=1e-5, rtol=1e-5)


def test_map_preserves_frobenius_norm():
    weight = torch.randn(8, 8)
    common, _ = to_common(weight, torch.zeros(8), embedding_matrix(8, 20, seed=0))
    assert torch.isclose(common.norm(), weight.norm(), rtol=1e-5)


def test_wider_client_is_projected_and_projection_is_idempotent():
    q = embedding_matrix(20, 8, seed=0)
    torch.testing.assert_close(q @ q.T, torch.eye(8), atol=1e-5, rtol=0)
    weight = torch.randn(20, 20)
    once = from_common(*to_common(weight, torch.zeros(20), q), q)[0]
    twice = from_common(*to_common(once, torch.zeros(20), q), q)[0]
    torch.testing.assert_close(once, twice, atol=1e-5, rtol=1e-5)


def test_matrix_is_determined_by_seed():
    assert torch.equal(embedding_matrix(8, 16, 4), embedding_matrix(8, 16, 4))
    assert not torch.equal(embedding_matrix(8, 16, 4), embedding_matrix(8, 16, 5))
