//! Compile-fail cases: every error `errgroup!` reports, with its exact output.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
