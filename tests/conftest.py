"""Shared test settings."""

from hypothesis import settings

# Tests never assert on wall time: hypothesis' per-example deadline is one such assertion, and it
# fails spuriously on a busy 2-core CI machine.
settings.register_profile("calsync", deadline=None, print_blob=True)
settings.load_profile("calsync")
