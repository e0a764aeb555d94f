import pytest
import torch

from privfed.devices import resolve_device
from privfed.errors import PrivfedError


def test_auto_is_cuda_exactly_when_present():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_names_the_option():
    with pytest.raises(PrivfedError, match="--device cuda: no CUDA device"):
        resolve_device("cuda")


def test_nonsense_device_is_a_user_error():
    with pytest.raises(PrivfedError, match="is not a device"):
        resolve_device("gpu0")
