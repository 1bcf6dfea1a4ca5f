"""A seeded fuzzer of calsync's inputs: ICS files, Google and Graph events, the roster and the config.

See :mod:`tests.fuzz.mutate` and docs/testing.md, "Fuzzing"."""
