"""fl.data: datasets, leakage-free standardization, partitions and their summary."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.data import DATASETS, load_dataset, partition, partition_summary
from secagg.errors import ConfigurationError, InputError


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_load_and_standardize_on_train_only(name):
    ds = load_dataset(name, seed=3, n_samples=300, n_features=8, n_classes=3)
    assert ds.X_train.shape[1] == ds.X_test.shape[1] == ds.n_features
    assert set(np.unique(ds.y_train)) == set(range(ds.n_classes))
    # train statistics are exactly standard; test statistics are not forced to be
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-9)
    sd = ds.X_train.std(axis=0)
    assert np.all((np.abs(sd - 1) < 1e-9) | (sd == 0))


def test_standardization_uses_no_test_rows():
    ds = load_dataset("breast_cancer", seed=0)
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, _, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    np.testing.assert_allclose(ds.mean, X_tr.mean(axis=0))
    np.testing.assert_allclose(ds.X_test, (X_te - X_tr.mean(axis=0)) / X_tr.std(axis=0))
    assert not np.allclose(ds.mean, X.mean(axis=0))


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ConfigurationError, match="unknown dataset 'mnist'.*breast_cancer"):
        load_dataset("mnist")


@settings(deadline=None, max_examples=30)
@given(n=st.integers(20, 200), k=st.integers(1, 10), scheme=st.sampled_from(["iid", "dirichlet", "quantity"]),
       alpha=st.floats(0.2, 5.0), seed=st.integers(0, 2**32 - 1))
def test_partitions_are_disjoint_and_cover_every_row(n, k, scheme, alpha, seed):
    y = np.random.default_rng(seed).integers(0, 3, size=n)
    parts = partition(y, k, scheme, alpha=alpha, min_size=1, rng=np.random.default_rng(seed))
    assert len(parts) == k
    allrows = np.concatenate(parts)
    assert np.array_equal(np.sort(allrows), np.arange(n))
    assert min(len(p) for p in parts) >= 1


def test_iid_sizes_are_balanced_and_skews_are_skewed():
    ds = load_dataset("digits", seed=0)
    rng = np.random.default_rng(0)
    iid = partition_summary(partition(ds.y_train, 10, "iid", rng=rng), ds.y_train, 10)
    dirl = partition_summary(partition(ds.y_train, 10, "dirichlet", alpha=0.1, rng=rng), ds.y_train, 10)
    qty = partition_summary(partition(ds.y_train, 10, "quantity", alpha=0.5, rng=rng), ds.y_train, 10)
    assert iid.sizes.max() - iid.sizes.min() <= 1
    # label skew lowers each client's label entropy (log2(10) = 3.32 bits when uniform)
    assert iid.label_entropy.mean() > 3.1 and dirl.label_entropy.mean() < 2.5
    assert qty.sizes.max() > 3 * qty.sizes.min()
    assert iid.label_counts.sum() == len(ds.y_train)
    assert "client" in iid.to_text() and iid.to_dict()["sizes"] == iid.sizes.tolist()


def test_bad_partitions_fail_clearly():
    y = np.zeros(10, dtype=int)
    with pytest.raises(ConfigurationError, match="at most 5 clients"):
        partition(y, 6, "iid")
    with pytest.raises(ConfigurationError, match="unknown partition"):
        partition(y, 2, "by-zip-code")
    with pytest.raises(ConfigurationError, match="alpha"):
        partition(y, 2, "dirichlet", alpha=0.0)
    with pytest.raises(InputError):
        partition(np.zeros(10), 2)
