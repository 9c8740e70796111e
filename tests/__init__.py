"""The test suite; a package so tests and benchmarks can import its helpers (tests.conftest, tests.planted_pii)."""
