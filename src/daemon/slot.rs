//! The state of one name in the daemon's table: what runs there (an [`Entry`]), an
//! operation in progress on it (an [`Op`]), or both; and the guard an operation holds while
//! it runs outside the table's lock, which ends it however it ends.

use std::sync::Arc;
use std::time::SystemTime;

use super::events::EventLog;
use super::spec::Spec;
use super::table::{Failure, Origin, Table};
use crate::error::Error;
use crate::runtime::{Instance, Stats, Stopper};

type Res<T> = std::result::Result<T, Failure>;

/// What runs under a name (or failed to).
pub(super) struct Entry {
    pub(super) spec: Spec,
    pub(super) origin: Origin,
    /// The digest of what runs (its OCI manifest's, else its bytes').
    pub(super) digest: String,
    pub(super) kind: &'static str,
    pub(super) instance: Option<Instance>,
    pub(super) log: Arc<EventLog>,
    pub(super) started: SystemTime,
    /// Why the last start failed, when nothing runs.
    pub(super) failure: Option<Error>,
    /// Counters of the versions that ran before this one (a reload keeps counting).
    pub(super) carried: Stats,
}

/// An operation in progress on a name.
pub(super) struct Op {
    pub(super) id: u64,
    pub(super) spec: Spec,
    pub(super) origin: Origin,
    pub(super) since: SystemTime,
    pub(super) log: Arc<EventLog>,
    pub(super) cancelled: bool,
    /// The version it started, once spawned.
    pub(super) stopper: Option<Stopper>,
}

/// A name's state: what runs (or failed), an operation in progress, or both.
pub(super) enum Slot {
    Idle(Entry),
    /// An operation, over what ran when it began (if anything).
    Busy(Op, Option<Entry>),
}

impl Slot {
    pub(super) fn entry(&self) -> Option<&Entry> {
        match self {
            Slot::Idle(e) | Slot::Busy(_, Some(e)) => Some(e),
            Slot::Busy(_, None) => None,
        }
    }

    pub(super) fn entry_mut(&mut self) -> Option<&mut Entry> {
        match self {
            Slot::Idle(e) | Slot::Busy(_, Some(e)) => Some(e),
            Slot::Busy(_, None) => None,
        }
    }

    pub(super) fn op(&self) -> Option<&Op> {
        match self {
            Slot::Busy(op, _) => Some(op),
            Slot::Idle(_) => None,
        }
    }

    pub(super) fn op_mut(&mut self) -> Option<&mut Op> {
        match self {
            Slot::Busy(op, _) => Some(op),
            Slot::Idle(_) => None,
        }
    }

    /// The operation `id`, if it is this slot's and was not cancelled.
    pub(super) fn live_op(&mut self, id: u64) -> Option<&mut Op> {
        self.op_mut().filter(|o| o.id == id && !o.cancelled)
    }
}

/// An operation registered on a name; dropping it ends the operation (and forgets a name that
/// it alone kept, with its pins).
pub(super) struct OpGuard<'a> {
    pub(super) table: &'a Table,
    pub(super) name: String,
    pub(super) id: u64,
    pub(super) log: Arc<EventLog>,
    /// What ran when the operation began: its digest and spec, if it was running.
    pub(super) running: Option<(String, Spec)>,
    pub(super) spawned: bool,
}

impl OpGuard<'_> {
    pub(super) fn cancelled(&self) -> bool {
        let mut slots = self.table.slots();
        slots
            .get_mut(&self.name)
            .and_then(|s| s.live_op(self.id))
            .is_none()
    }

    pub(super) fn check(&self) -> Res<()> {
        if self.cancelled() {
            return Err(Failure::Conflict(format!(
                "instance {} was stopped while it was starting",
                self.name
            )));
        }
        Ok(())
    }

    /// Counts the version as starting (the daemon's stop waits for it) and hands its stopper
    /// to the operation, so a stop reaches it; stops it at once when a stop came first.
    pub(super) fn on_spawn(&mut self, s: Stopper) {
        *self
            .table
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += 1;
        self.spawned = true;
        let mut slots = self.table.slots();
        match slots.get_mut(&self.name).and_then(|sl| sl.live_op(self.id)) {
            Some(op) => op.stopper = Some(s),
            None => s.stop(),
        }
    }
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        let forget = {
            let mut slots = self.table.slots();
            match slots.remove(&self.name) {
                Some(Slot::Busy(op, Some(e))) if op.id == self.id => {
                    slots.insert(self.name.clone(), Slot::Idle(e));
                    false
                }
                Some(Slot::Busy(op, None)) if op.id == self.id => true,
                // Another's (this one was stopped and the name used again): left as it is.
                Some(other) => {
                    slots.insert(self.name.clone(), other);
                    false
                }
                // Stopped, with the whole table, while this operation ran.
                None => true,
            }
        };
        if self.spawned {
            *self
                .table
                .starting
                .lock()
                .unwrap_or_else(|e| e.into_inner()) -= 1;
            self.table.started_cv.notify_all();
        }
        if forget {
            // Nothing runs under this name: its event log ends and nothing stays pinned.
            self.log.close();
            if let Some(d) = self.table.pin_dir(&self.name) {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}
