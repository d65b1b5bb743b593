//! Go's `errgroup` + `context` discipline for async Rust, as an inline macro.
//!
//! ```
//! use errgroup::errgroup;
//! # struct Db;
//! # impl Db {
//! #     async fn user(&self, _: &errgroup::Ctx, id: u64) -> anyhow::Result<String> { Ok(format!("user{id}")) }
//! #     async fn orders(&self, _: &errgroup::Ctx, _: u64) -> anyhow::Result<Vec<u32>> { Ok(vec![1, 2]) }
//! # }
//!
//! async fn page(db: &Db, id: u64) -> anyhow::Result<(String, Vec<u32>)> {
//!     let (user, orders) = errgroup! {
//!         user   => db.user(&ctx, id).await,
//!         orders => db.orders(&ctx, id).await,
//!     }?;
//!     Ok((user, orders))
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # assert_eq!(page(&Db, 7).await.unwrap(), ("user7".to_string(), vec![1, 2]));
//! # }
//! ```
//!
//! All branches start at once; the first to fail cancels the others through
//! the injected [`ctx`](Ctx); the group waits for every branch, then yields
//! every value in branch order or the first error, named after its branch.
//! See [`errgroup!`] for the grammar and the rules, [`Ctx`] for what a branch
//! can do with its context, and [`Group`] for groups built at run time.

#![forbid(unsafe_code)]

// Lets this crate's own tests and doctests use `errgroup!`, whose expansion
// names `::errgroup`.
extern crate self as errgroup;

mod ctx;
mod error;
mod group;
mod shared;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::ctx::Ctx;
pub use crate::error::{Cancelled, Cause, Error, TaskName};
pub use crate::group::Group;
pub use errgroup_macros::errgroup;
