"""The call lab: the e2e harness, the test phone and the provider stand-ins, for tests and
benchmarks only (not shipped in the wheel)."""
