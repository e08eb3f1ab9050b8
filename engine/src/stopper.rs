//! The stop signal the engine's background threads sleep on.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::Duration;

/// Wakes a background thread early and tells it to stop.
#[derive(Clone, Default)]
pub(crate) struct Stopper(Arc<(Mutex<bool>, Condvar)>);

impl Stopper {
    pub fn stopped(&self) -> bool {
        *self.0.0.lock()
    }

    pub fn stop(&self) {
        *self.0.0.lock() = true;
        self.0.1.notify_all();
    }

    /// Sleeps up to `d`; returns false once stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let mut stopped = self.0.0.lock();
        if !*stopped {
            self.0.1.wait_for(&mut stopped, d);
        }
        !*stopped
    }
}
