//! The error type of a group whose branches all end in `Ok(..)` is
//! inferred wherever rustc can infer it: from a type annotation on the
//! result, from the function the group is the tail of, from a `?` that
//! converts into a known type. No header needed.

use errgroup::errgroup;

#[derive(Debug, PartialEq)]
struct MyErr;

impl std::fmt::Display for MyErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyErr {}

fn parse(text: &str) -> Result<u32, MyErr> {
    text.parse().map_err(|_| MyErr)
}

/// The group is the function's tail: its return type names the error.
async fn sum(a: &str, b: &str) -> Result<(u32, u32), errgroup::Error<MyErr>> {
    errgroup! {
        a => {
            let n = parse(a)?;
            Ok(n)
        },
        b => {
            let n = parse(b)?;
            Ok(n)
        },
    }
}

#[tokio::test]
async fn an_annotated_result_fixes_the_error_type() {
    let r: Result<_, errgroup::Error<MyErr>> = errgroup! {
        a => Ok(1),
        b => Ok("two"),
    };
    assert_eq!(r.expect("no branch fails"), (1, "two"));
}

#[tokio::test]
async fn the_functions_return_type_fixes_the_error_type() {
    assert_eq!(sum("1", "2").await.expect("both parse"), (1, 2));
    let e = sum("1", "x").await.expect_err("b fails");
    assert_eq!(e.task().map(|t| t.name().to_owned()), Some("b".to_owned()));
    assert_eq!(e.into_inner(), Some(MyErr));
}
