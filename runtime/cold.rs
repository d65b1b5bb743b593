//! [`Cold`]: an `Option` for a value most groups never make, whose drop
//! is one test where it is dropped.
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::rc::Rc;

    use super::Cold;

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
}
