//! Test support package: see tests/e2e.
