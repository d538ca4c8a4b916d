import pytest
import torch

from snnrun.components.encoders import Encoder, PoissonEncoder
from snnrun.errors import ConfigError


def test_poisson_rate_matches_intensity():
    torch.manual_seed(0)
    enc = PoissonEncoder(time=1000.0, dt=1.0, intensity=100.0)
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]]).repeat(50, 1)
    s = enc(x)
    assert s.shape == (1000, 50, 4)
    rate_hz = s.float().mean((0, 1)) * 1000.0
    # expected 0, 25, 50, 100 Hz; std of the mean over 50k bins is < 0.5 Hz
    assert rate_hz.tolist() == pytest.approx([0.0, 25.0, 50.0, 100.0], abs=2.0)


def test_poisson_steps_follow_time_and_dt():
    enc = Encoder.build({"type": "poisson", "time": 100, "dt": 0.5, "intensity": 10})
    assert enc.steps == 200 and enc(torch.zeros(2, 3)).shape == (200, 2, 3)


def test_poisson_rejects_bad_settings():
    with pytest.raises(ConfigError) as e:
        Encoder.build({"type": "poisson", "intensity": -1}, key="model.encoder")
    assert e.value.key == "model.encoder.intensity"
    with pytest.raises(ConfigError):
        Encoder.build({"type": "poisson", "time": 1, "dt": 2}, key="model.encoder")
