//! The in-memory fake passes the conformance suite (the same suite runs
//! against our bbstored and 0.13's in bb-tests).

use bb_format::Keys;
use bb_remote::conformance;
use bb_remote::fake::FakeStore;

#[test]
fn fake_passes_the_conformance_suite() {
    conformance::run(&mut FakeStore::default(), &Keys::test_vector());
}

#[test]
fn fake_refuses_uploads_over_the_hard_limit() {
    conformance::hard_limit(&mut FakeStore::new(40, 50), &Keys::test_vector());
}

#[test]
fn fake_read_only() {
    let mut f = FakeStore::default();
    f.read_only = true;
    conformance::read_only(&mut f, &Keys::test_vector());
}
