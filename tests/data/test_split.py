import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfed.data import Split, SplitPlan, load_split, make_split, save_split
from privfed.data.allocation import stratified_table
from privfed.errors import PrivfedError


def pool(counts, prefix="img"):
    """(ids, labels) with counts[c] images of class c; ids deliberately not sorted by class."""
    labels = np.repeat(np.arange(len(counts)), counts)
    ids = [f"{prefix}{i:05d}" for i in np.random.default_rng(123).permutation(len(labels))]
    return ids, labels


def counts_of(ids, data):
    label_of = dict(zip(*data))
    return np.bincount([label_of[i] for i in ids], minlength=int(max(data[1])) + 1)


SIZES = SplitPlan("sizes", client_size=50, server_size=40, test_size=60)


def test_disjoint_sized_and_stratified_within_one_per_class():
    data = pool([150, 80, 40])
    split = make_split(data, 3, SIZES, seed=0)
    parties = split.parties()
    assert [len(v) for v in parties.values()] == [50, 50, 50, 40, 60]
    everyone = [i for ids in parties.values() for i in ids]
    assert len(everyone) == len(set(everyone)) == 250
    share = np.array([150, 80, 40]) / 270
    for ids in parties.values():
        assert np.all(np.abs(counts_of(ids, data) - len(ids) * share) < 1)
    assert split.num_clients == 3 and split.classes == ["class_0", "class_1", "class_2"]


def test_same_seed_same_split_other_seed_differs():
    data = pool([60, 40])
    plan = SplitPlan("fractions")
    assert make_split(data, 2, plan, 7).to_dict() == make_split(data, 2, plan, 7).to_dict()
    assert make_split(data, 2, plan, 7).clients[0] != make_split(data, 2, plan, 8).clients[0]
    reordered = (list(reversed(data[0])), data[1][::-1])  # pool order does not matter
    assert make_split(reordered, 2, plan, 7).to_dict() == make_split(data, 2, plan, 7).to_dict()


def test_fraction_plan_sizes():
    split = make_split(pool([60, 40]), 4, SplitPlan("fractions"), 0)
    assert [len(c) for c in split.clients] == [15] * 4 and len(split.server) == 15 and len(split.test) == 25
    custom = SplitPlan("fractions", clients_fraction=0.5, server_fraction=0.0, test_fraction=0.5)
    split = make_split(pool([60, 40]), 2, custom, 0)
    assert [len(c) for c in split.clients] == [25, 25] and split.server == [] and len(split.test) == 50


def test_dirichlet_skews_clients_but_keeps_sizes_and_server_test_stratified():
    data = pool([200, 200])
    plan = SplitPlan("sizes", client_size=60, server_size=40, test_size=60, dirichlet_alpha=0.1)
    split = make_split(data, 4, plan, seed=1)
    assert [len(c) for c in split.clients] == [60] * 4
    skewed = [counts_of(c, data)[0] / 60 for c in split.clients]
    assert max(abs(f - 0.5) for f in skewed) > 0.3  # at least one client mostly one class
    for ids in (split.server, split.test):
        assert np.all(np.abs(counts_of(ids, data) - len(ids) / 2) < 1)
    everyone = [i for ids in split.parties().values() for i in ids]
    assert len(everyone) == len(set(everyone))
    iid = make_split(data, 4, SplitPlan("sizes", client_size=60, server_size=40, test_size=60, dirichlet_alpha=1e4), seed=1)
    assert max(abs(counts_of(c, data)[0] / 60 - 0.5) for c in iid.clients) < 0.1


def test_too_small_for_the_reference_plan():
    data = pool([674, 4864])
    with pytest.raises(PrivfedError) as excinfo:
        make_split(data, 4, SplitPlan(), 0)
    assert str(excinfo.value) == (
        "the reference plan needs 8400 images (4 clients x 1176 + server 1176 + test 2520) "
        "but the given pool has 5538; use --plan fractions or smaller sizes"
    )
    with pytest.raises(PrivfedError, match="needs 400 images .* has 270"):
        make_split(pool([150, 80, 40]), 6, SIZES, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "random"}, "unknown plan 'random'"),
        ({"kind": "sizes", "client_size": 5, "server_size": 5}, "--test-size is required"),
        ({"kind": "seed", "client_size": 5}, "--plan seed fixes the sizes"),
        ({"kind": "seed", "test_fraction": 0.5}, "applies only to --plan fractions"),
        ({"kind": "fractions", "client_size": 5}, "applies only to --plan sizes"),
        ({"kind": "fractions", "clients_fraction": 0.9, "test_fraction": 0.2}, "is more than 1"),
        ({"kind": "fractions", "dirichlet_alpha": 0}, "--dirichlet-alpha 0: must be > 0"),
    ],
)
def test_bad_plans(kwargs, message):
    with pytest.raises(PrivfedError, match=message):
        SplitPlan(**kwargs)


def test_save_and_load_round_trip(tmp_path):
    split = make_split(pool([30, 20]), 2, SplitPlan("fractions", dirichlet_alpha=1.0), 3)
    save_split(split, tmp_path / "split.json")
    raw = json.loads((tmp_path / "split.json").read_text())
    assert list(raw)[:5] == ["format_version", "seed", "plan", "classes", "num_clients"]
    assert raw["plan"]["kind"] == "fractions" and raw["num_clients"] == 2
    loaded = load_split(tmp_path / "split.json")
    assert isinstance(loaded, Split) and loaded == split
    reference = SplitPlan.from_dict({"kind": "seed", "future_field": 1})
    assert (reference.client_size, reference.server_size, reference.test_size) == (1176, 1176, 2520)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("clients"), "missing clients"),
        (lambda d: d.update(format_version=9), "format_version 9"),
        (lambda d: d["test"].append(d["server"][0]), "in both server and test"),
        (lambda d: d.update(num_clients=5), "num_clients is 5"),
        (lambda d: d.update(server="abc"), "'server' must be a list"),
        (lambda d: d["plan"].update(kind="nope"), "its plan is not valid"),
    ],
)
def test_load_split_refuses_damaged_files(tmp_path, change, message):
    data = make_split(pool([30, 20]), 2, SplitPlan("fractions"), 0).to_dict()
    change(data)
    (tmp_path / "split.json").write_text(json.dumps(data))
    with pytest.raises(PrivfedError, match=message):
        load_split(tmp_path / "split.json")
    with pytest.raises(PrivfedError, match="file not found"):
        load_split(tmp_path / "missing.json")


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    cuts=st.lists(st.floats(0, 1), min_size=1, max_size=5),
)
def test_stratified_table_meets_margins_and_rounds_each_cell(counts, cuts):
    total = sum(counts)
    bounds = sorted(int(c * total) for c in cuts)
    sizes = np.diff([0, *bounds, total]).tolist()
    table = stratified_table(sizes, counts)
    assert table.sum(axis=1).tolist() == sizes and table.sum(axis=0).tolist() == counts
    if total:
        ideal = np.outer(sizes, counts) / total
        assert np.all(np.abs(table - ideal) < 1) and np.all(table >= 0)
