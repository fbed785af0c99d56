"""Test set-up: float64 and the compilation cache come with ``import derivations``; hypothesis profiles.

Profiles: ``ci`` is deterministic (derandomized) with 60 examples a property, and the default everywhere, so
``make test`` gives the same answer every time; ``dev`` draws 300 fresh examples a property
(``HYPOTHESIS_PROFILE=dev``, which ``make fuzz`` sets), for exploring before a change lands.
"""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

import derivations  # noqa: F401  (x64 and the persistent compilation cache before any test runs)

settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def blocked(monkeypatch):
    """models.normalization with every input on the blocked-statistics path, on any backend: a cache of 0
    bytes, a CPU reported, and the module's compiled programs dropped before and after."""
    from models import normalization as mn

    monkeypatch.setattr(mn, "last_level_cache_bytes", lambda: 0)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    mn.clear_statistics_caches()
    yield mn
    mn.clear_statistics_caches()
