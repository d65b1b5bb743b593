//! [`Cold`]: an `Option` for a value most groups never make, whose drop
//! is one test where it is dropped; [`ColdOnce`], the same for a `OnceLock`.
//!
//! A type with a field whose drop is large (an `Arc`, a boxed future, a
//! user's error) gets drop glue too large to inline, and every value of it
//! then costs a call to drop, even when the field is `None` (a call per
//! trivial group for its lifecycle's timers, benches/instructions.sh). A
//! `Cold` field tests for `None` inline and
//! drops a value out of line, so what holds it can have a drop small enough
//! to inline.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

/// An `Option<T>` (it derefs to one) whose drop tests for `None` inline
/// and drops a value out of line ([`drop_cold`]).
pub(crate) struct Cold<T>(ManuallyDrop<Option<T>>);

impl<T> Cold<T> {
    #[inline]
    pub(crate) const fn new(value: Option<T>) -> Self {
        Cold(ManuallyDrop::new(value))
    }
}

impl<T> Deref for Cold<T> {
    type Target = Option<T>;

    #[inline]
    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

impl<T> DerefMut for Cold<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Option<T> {
        &mut self.0
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Cold<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T> Drop for Cold<T> {
    #[inline]
    fn drop(&mut self) {
        if self.0.is_some() {
            drop_cold(&mut self.0);
        }
    }
}

/// Drops the value, leaving `None` (which the `ManuallyDrop` then keeps,
/// as it never drops anything itself).
#[cold]
#[inline(never)]
fn drop_cold<T>(value: &mut Option<T>) {
    drop(value.take());
}

/// A [`OnceLock`] (it derefs to one) whose drop tests for an empty cell
/// inline and drops a value out of line: a lent ctx's promoted `Ctx`,
/// which most never make.
pub(crate) struct ColdOnce<T>(ManuallyDrop<OnceLock<T>>);

impl<T> ColdOnce<T> {
    #[inline]
    pub(crate) const fn new() -> Self {
        ColdOnce(ManuallyDrop::new(OnceLock::new()))
    }

    /// The value, if one was set, leaving the cell empty.
    pub(crate) fn take(&mut self) -> Option<T> {
        self.0.take()
    }
}

impl<T> Deref for ColdOnce<T> {
    type Target = OnceLock<T>;

    #[inline]
    fn deref(&self) -> &OnceLock<T> {
        &self.0
    }
}

impl<T> Drop for ColdOnce<T> {
    #[inline]
    fn drop(&mut self) {
        if self.0.get().is_some() {
            drop_once_cold(&mut self.0);
        }
    }
}

/// Drops the value, leaving the cell empty (see [`drop_cold`]).
#[cold]
#[inline(never)]
fn drop_once_cold<T>(value: &mut OnceLock<T>) {
    drop(value.take());
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::rc::Rc;

    use super::{Cold, ColdOnce};

    #[test]
    fn a_value_is_dropped_once_and_none_is_nothing() {
        let value = Rc::new(());
        drop(Cold::new(Some(Rc::clone(&value))));
        assert_eq!(Rc::strong_count(&value), 1);
        let mut cold = Cold::new(Some(Rc::clone(&value)));
        let taken = cold.take();
        drop(cold);
        assert_eq!(Rc::strong_count(&value), 2);
        drop(taken);
        assert_eq!(Rc::strong_count(&value), 1);
        drop(Cold::<Rc<()>>::new(None));
    }

    #[test]
    fn a_set_cell_is_dropped_once_and_an_empty_one_is_nothing() {
        let value = Rc::new(());
        let cell = ColdOnce::new();
        assert!(cell.set(Rc::clone(&value)).is_ok());
        drop(cell);
        assert_eq!(Rc::strong_count(&value), 1);
        let mut cell = ColdOnce::new();
        assert!(cell.set(Rc::clone(&value)).is_ok());
        let taken = cell.take();
        drop(cell);
        assert_eq!(Rc::strong_count(&value), 2);
        drop(taken);
        drop(ColdOnce::<Rc<()>>::new());
    }
}
