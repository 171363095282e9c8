//! bb-tests: the test kit and the end-to-end and interop suites. Not published.
//!
//! Will own: temporary stores, certificates and keys, an in-process server, helpers
//! to run the real Box Backup 0.13 binaries, and the suites where both ends of the
//! protocol meet.
