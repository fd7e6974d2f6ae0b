"""fl.devices and fl.distributed: heterogeneous device model, sync vs FedAvg time, data-parallel baseline."""

import numpy as np
import pytest
from scipy import stats

from fl.data import load_dataset
from fl.devices import REFERENCE_FLOPS, DeviceFleet, device_times, fedavg_round_time, sync_step_time
from fl.distributed import DistributedConfig, run_distributed
from fl.server import FedAvgConfig, run_fedavg
from secagg.errors import ConfigurationError, InputError


def test_fleet_is_seedable_and_log_normal():
    a, b = DeviceFleet.sample(2000, 7), DeviceFleet.sample(2000, 7)
    np.testing.assert_array_equal(a.flops, b.flops)
    # log(flops) ~ N(log 2e9, 1): Kolmogorov-Smirnov at significance 0.001, fixed seed
    z = np.log(a.flops / 2e9)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    np.testing.assert_allclose(a.downlink, 4 * a.uplink)


def test_device_time_formula():
    f = DeviceFleet.uniform(2, flops=1e9, uplink=1e3, downlink=2e3, latency=0.1)
    t = device_times(f, flops=[1e9, 2e9], bytes_up=1000, bytes_down=2000, crypto_seconds=1e-3, round_trips=2)
    crypto = 1e-3 * REFERENCE_FLOPS / 1e9
    np.testing.assert_allclose(t, [0.2 + 1 + 1 + crypto + 1, 0.2 + 1 + 2 + crypto + 1])


def test_round_time_waits_for_slowest_or_deadline():
    t = np.array([1.0, 2.0, 9.0])
    assert fedavg_round_time(t)[0] == 9.0
    wait, late = fedavg_round_time(t, deadline=3.0)
    assert wait == 3.0 and late.tolist() == [False, False, True]
    assert sync_step_time(t) == 9.0
    with pytest.raises(ConfigurationError):
        fedavg_round_time(t, deadline=0)
    with pytest.raises(InputError):
        DeviceFleet(np.ones(2), np.ones(3), np.ones(2), np.ones(2))


def test_distributed_baseline_learns_and_counts_bytes_like_plain():
    ds = load_dataset("breast_cancer", seed=0)
    cfg = DistributedConfig(num_workers=4, epochs=10, batch_size=64)
    res = run_distributed(ds, cfg, seed=0)
    steps = int(np.ceil(len(ds.y_train) / 64))
    assert res.history[-1].steps == steps
    P = 31
    # every step: each worker sends its float32 gradient and receives the float32 model
    assert res.history[0].bytes_up == steps * 4 * 4 * P == res.history[0].bytes_down
    assert res.bytes_data_moved == len(ds.y_train) * (30 * 4 + 8)
    assert res.accuracy > 0.94


def test_sync_data_parallel_is_slower_than_fedavg_on_heterogeneous_devices():
    """Equal work (epochs = rounds x local epochs) on the same 10 devices: data-parallel
    pays the slowest worker's latency at every step, FedAvg once per round."""
    ds = load_dataset("breast_cancer", seed=0)
    fleet = DeviceFleet.sample(10, 3)
    fed = run_fedavg(ds, FedAvgConfig(rounds=10), num_clients=10, seed=0, devices=fleet)
    dist = run_distributed(ds, DistributedConfig(num_workers=10, epochs=10, batch_size=64), devices=fleet, seed=0)
    assert dist.simulated_seconds > 3 * fed.simulated_seconds
    assert dist.bytes_total > fed.bytes_total
