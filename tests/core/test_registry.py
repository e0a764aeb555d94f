import pytest

from privfed.errors import PrivfedError
from privfed.registry import Registry


def test_registry_lookup_and_did_you_mean():
    reg: Registry[int] = Registry("aggregation rule", "--aggregation")
    reg.add("mean", 1)
    reg.add("median", 2)
    assert reg.get("median") == 2 and reg.names() == ["mean", "median"]
    with pytest.raises(PrivfedError, match=r"unknown aggregation rule 'meen' for --aggregation \(did you mean 'mean'\?\)"):
        reg.get("meen")
    with pytest.raises(ValueError):
        reg.add("mean", 3)
