//! Hygiene: `errgroup!` compiles and works in a module that shadows every prelude name it could lean on (`Result`, `Ok`, `Err`, `Option`, `Some`, `None`, `Box`, `Future`, `Pin`, ...) and declares modules named `tokio`, `core`, `std` and `errgroup`.

mod shadowed {
    #![allow(
        dead_code,
        non_camel_case_types,
        non_snake_case,
        non_upper_case_globals,
        clippy::upper_case_acronyms,
        reason = "every item here exists only to shadow a name the expansion must not use"
    )]

    // The macro namespace is separate from the items below.
    use ::errgroup::errgroup;

    // Types and traits of the prelude.
    struct Result;
    struct Option;
    struct Box;
    struct Vec;
    struct String;
    struct Pin;
    trait Future {}
    trait IntoFuture {}
    trait Send {}
    trait Sync {}
    trait Unpin {}
    trait Sized {}
    trait Drop {}
    trait Clone {}
    trait Copy {}
    trait Default {}
    trait From {}
    trait Into {}
    trait Iterator {}
    trait IntoIterator {}
    trait Fn {}
    trait FnMut {}
    trait FnOnce {}

    // Values of the prelude.
    fn Ok() {}
    fn Err() {}
    fn Some() {}
    const None: () = ();
    fn drop() {}

    // Crate-like names: only a leading `::` reaches the real crates now.
    mod tokio {}
    mod core {}
    mod std {}
    mod errgroup {}

    fn run<F: ::core::future::Future>(fut: F) -> F::Output {
        ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(fut)
    }

    type Outcome = ::core::result::Result<u32, &'static str>;

    async fn every_branch_kind_and_header() -> Outcome {
        let local = 20_u32;
        // A local named like an internal one stays the user's.
        let __errgroup_scope = 1_u32;
        let parent = errgroup! {
            timeout = ::core::time::Duration::from_secs(60);
            shutdown_on = ::core::future::pending::<()>();
            crate = ::errgroup;
            limit = 2;
            type Error = &'static str;
            outer => {
                let (a, b, c, d) = errgroup! {
                    parent = ctx;
                    type Error = &'static str;
                    deadline = ::tokio::time::Instant::now() + ::core::time::Duration::from_secs(30);
                    plain => ::core::result::Result::Ok(local + __errgroup_scope),
                    #[spawn] spawned => ::core::result::Result::Ok(10_u32),
                    #[blocking] blocking => ::core::result::Result::Ok(u32::from(!ctx.is_cancelled())),
                    slept => {
                        ctx.sleep(::core::time::Duration::from_millis(5)).await.map_err(|_| "cancelled")?;
                        ::core::result::Result::Ok(ctx.task().to_string())
                    },
                }
                .map_err(|_| "inner failed")?;
                ::core::result::Result::Ok(a + b + c + u32::try_from(d.len()).unwrap())
            },
        };
        let (total,) = parent.map_err(|_| "outer failed")?;
        ::core::result::Result::Ok(total)
    }

    async fn supervised_and_failing() -> (::core::result::Result<u8, &'static str>, &'static str) {
        let (good, bad) = errgroup! {
            on_error = continue;
            good => ::core::result::Result::Ok::<u8, &'static str>(1),
            bad => ::core::result::Result::Err::<u8, _>("no"),
        }
        .unwrap();
        assert_eq!(bad, ::core::result::Result::Err("no"));
        let failed = errgroup! {
            fails => ::core::result::Result::Err::<(), &'static str>("boom"),
            waits => { ctx.cancelled().await; ::core::result::Result::Ok(()) },
        };
        (good, failed.unwrap_err().into_inner().unwrap())
    }

    #[test]
    fn the_macro_works_where_prelude_and_crate_names_are_shadowed() {
        assert_eq!(
            run(every_branch_kind_and_header()),
            ::core::result::Result::Ok(21 + 10 + 1 + 5)
        );
        assert_eq!(
            run(supervised_and_failing()),
            (::core::result::Result::Ok(1), "boom")
        );
    }
}

/// A user item named `ctx` in scope where the group is written: the
/// branches still see their own `ctx`, and the item stays the user's
/// outside them.
mod an_item_named_ctx {
    #![allow(
        non_upper_case_globals,
        non_camel_case_types,
        reason = "items named like the injected `ctx`, on purpose"
    )]

    /// One group with every branch shape, each reporting its task name
    /// through `ctx`; written as a macro so that each module below can hold
    /// its own `ctx` item around the same group.
    macro_rules! every_shape {
        () => {
            async {
                let items = [1_u8, 2];
                let (plain, spawned, blocking, fan, spawned_fan, blocking_fan) = ::errgroup::errgroup! {
                    type Error = ::errgroup::Cancelled;
                    plain => { ctx.check()?; Ok(ctx.task().to_string()) },
                    #[spawn] spawned => { ctx.check()?; Ok(ctx.task().to_string()) },
                    #[blocking] blocking => { ctx.check()?; Ok(ctx.task().to_string()) },
                    fan => for _i in &items { ctx.check()?; Ok(ctx.task().to_string()) },
                    #[spawn] spawned_fan => for _i in [1_u8, 2] { ctx.check()?; Ok(ctx.task().to_string()) },
                    #[blocking] blocking_fan => for _i in [1_u8, 2] { ctx.check()?; Ok(ctx.task().to_string()) },
                }
                .expect("no branch fails");
                [plain, spawned, blocking, fan.join(" "), spawned_fan.join(" "), blocking_fan.join(" ")]
            }
        };
    }

    const EXPECTED: [&str; 6] = [
        "plain",
        "spawned",
        "blocking",
        "fan[0] fan[1]",
        "spawned_fan[0] spawned_fan[1]",
        "blocking_fan[0] blocking_fan[1]",
    ];

    mod a_const {
        const ctx: u8 = 7;

        #[tokio::test]
        async fn branches_see_their_ctx() {
            assert_eq!(every_shape!().await, super::EXPECTED);
            assert_eq!(ctx, 7);
        }
    }

    mod a_static {
        static ctx: &str = "static";

        #[tokio::test]
        async fn branches_see_their_ctx() {
            assert_eq!(every_shape!().await, super::EXPECTED);
            assert_eq!(ctx, "static");
        }
    }

    mod a_unit_struct {
        #[derive(Debug, PartialEq)]
        struct ctx;

        #[tokio::test]
        async fn branches_see_their_ctx() {
            assert_eq!(every_shape!().await, super::EXPECTED);
            assert_eq!(ctx, ctx);
        }
    }

    mod an_imported_variant {
        #[derive(Debug, PartialEq)]
        enum Name {
            ctx,
            Other,
        }
        use Name::ctx;

        #[tokio::test]
        async fn branches_see_their_ctx() {
            assert_eq!(every_shape!().await, super::EXPECTED);
            assert_ne!(ctx, Name::Other);
        }
    }

    /// An item declared in the same block as the group.
    #[tokio::test]
    async fn a_const_in_the_enclosing_block() {
        const ctx: u8 = 9;
        assert_eq!(every_shape!().await, EXPECTED);
        assert_eq!(ctx, 9);
    }

    /// A nested group whose fan-out items expression names the enclosing
    /// branch's `ctx`, with a user item `ctx` outside both.
    #[tokio::test]
    async fn a_nested_fan_out_whose_items_name_the_enclosing_ctx() {
        const ctx: u8 = 3;
        let (got,) = ::errgroup::errgroup! {
            type Error = ::errgroup::Cancelled;
            outer => {
                let name = ctx.task().to_string();
                let (fan,) = ::errgroup::errgroup! {
                    type Error = ::errgroup::Cancelled;
                    fan => for outer in [ctx.task().to_string()] { ctx.check()?; Ok(outer) },
                }
                .expect("no branch fails");
                Ok((name, fan))
            },
        }
        .expect("no branch fails");
        assert_eq!(got, ("outer".to_owned(), vec!["outer".to_owned()]));
        assert_eq!(ctx, 3);
    }
}
