//! End-to-end tests of svcauth live in `tests/tests/`: they run the project's
//! binaries as real processes. This library is empty on purpose; the package
//! exists so those tests have a home that is not part of any published crate.
