"""calsync: checks, pair by pair and meeting by meeting, whether 1:1s actually happen."""

__version__ = "0.1.0"
