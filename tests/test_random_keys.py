"""Counter-based random numbers (snnrun.engine.random_keys) and the one-spike choice that uses them."""

import torch

from snnrun.engine.random_keys import counter_uniform, splitmix64


def test_splitmix64_matches_the_reference_values():
    # SplitMix64 with state 0: the published first outputs (as signed 64-bit integers)
    golden = 0x9E3779B97F4A7C15
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    states = torch.tensor([((k + 1) * golden) % 2**64 - (2**64 if ((k + 1) * golden) % 2**64 >= 2**63 else 0)
                           for k in range(3)], dtype=torch.int64)
    got = [int(v) % 2**64 for v in splitmix64(states)]
    assert got == expected


def test_uniform_moments_and_independent_draws():
    u = counter_uniform((500, 400), torch.tensor(7), seed=3)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 3e-3 and abs(float(u.var()) - 1 / 12) < 2e-3
    # a histogram over 20 bins: chi-square well under its 99.9% point (43.8 for 19 dof)
    counts = torch.histc(u, bins=20, min=0.0, max=1.0)
    chi2 = float(((counts - u.numel() / 20) ** 2 / (u.numel() / 20)).sum())
    assert chi2 < 43.8
    v = counter_uniform((500, 400), torch.tensor(8), seed=3)
    w = counter_uniform((500, 400), torch.tensor(7), seed=4)
    for other in (v, w):
        r = torch.corrcoef(torch.stack([u.flatten(), other.flatten()]))[0, 1]
        assert abs(float(r)) < 0.01
    assert torch.equal(u, counter_uniform((500, 400), torch.tensor(7), seed=3))  # reproducible


def test_one_spike_choice_with_counter_keys_is_uniform_among_crossing_neurons():
    """The key argmax over the crossing neurons picks each of them equally often."""
    crossing = torch.zeros(4000, 10)
    crossing[:, [1, 4, 5, 9]] = 1.0
    keys = counter_uniform(tuple(crossing.shape), torch.tensor(1), seed=11).masked_fill(crossing == 0, -1.0)
    picks = torch.bincount(keys.argmax(1), minlength=10).float()
    assert picks[[0, 2, 3, 6, 7, 8]].sum() == 0
    # each of the 4 is chosen 1000 +- 3 sd (sd = sqrt(4000 * 1/4 * 3/4) = 27)
    assert torch.all((picks[[1, 4, 5, 9]] - 1000).abs() < 82)


def test_draw_counter_is_checkpointed_and_old_checkpoints_still_load():
    from snnrun.components.neurons import NeuronModel

    a = NeuronModel.build({"type": "diehl_cook", "n": 4})
    a.rng_draws.fill_(17)  # as after 17 CUDA draws
    state = a.state_dict()
    assert int(state["rng_draws"]) == 17
    b = NeuronModel.build({"type": "diehl_cook", "n": 4})
    b.load_state_dict(state)
    assert int(b.rng_draws) == 17  # a resumed run continues the stream
    del state["rng_draws"]  # a checkpoint from before the counter existed
    c = NeuronModel.build({"type": "diehl_cook", "n": 4})
    c.load_state_dict(state)
    assert int(c.rng_draws) == 0
