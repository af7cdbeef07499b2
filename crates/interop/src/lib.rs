//! Differential tests against the reference Warg crates live in `tests/`.
