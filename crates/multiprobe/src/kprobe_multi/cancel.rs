//! Stopping a slow attach from elsewhere: per-function kprobes go in one at a time (seconds
//! for a few hundred functions on an emulated CPU), and a program interrupted meanwhile
//! (a SIGINT handler setting a flag) should not have to wait for the last one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag an attach polls between functions; set, the attach detaches what it made and
/// fails with [`crate::AttachError::Cancelled`]. Two are equal when they share the flag.
#[derive(Debug, Clone)]
pub(crate) struct CancelFlag(pub(crate) Arc<AtomicBool>);

impl CancelFlag {
    /// Whether the flag has been set.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl PartialEq for CancelFlag {
    fn eq(&self, other: &CancelFlag) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CancelFlag {}
