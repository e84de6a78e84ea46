//! The loop of every batched hypercall: handle entries one at a time, stop
//! at the first failure, and after a budget of entries give the CPU back
//! with a continuation (Xen's `hypercall_preempt_check` and
//! `hypercall_create_continuation`), so that no guest holds the hypervisor
//! for long whatever count it passes.

use super::{Done, HcResult};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;

/// How a batch run ended.
pub(super) enum End<E> {
    /// Every entry up to the count was handled.
    All,
    /// An entry failed (it is not counted as done).
    Failed(E),
    /// The budget ran out with entries left: continue later.
    Preempted,
}

/// Run `one(i)` for `i` in `start..count`, at most `budget` entries this
/// time. Returns the first index not handled and why the run ended.
pub(super) fn run<E>(start: u64, count: u64, budget: u64, mut one: impl FnMut(u64) -> Result<(), E>) -> (u64, End<E>) {
    let mut i = start;
    while i < count {
        if i - start == budget {
            return (i, End::Preempted);
        }
        if let Err(e) = one(i) {
            return (i, End::Failed(e));
        }
        i += 1;
    }
    (i, End::All)
}

/// Set in `count` when a batch was preempted (Xen's `MMU_UPDATE_PREEMPTED`):
/// the done count so far is then read back from `pdone`.
pub const MMU_UPDATE_PREEMPTED: u64 = 1 << 31;

impl<P: Platform> Xen<P> {
    /// The batch protocol of `mmu_update` and `mmuext_op`
    /// (`(list, count, pdone, foreigndom)`): `one(self, i)` handles entry
    /// `i` of this run's `list`; the total done (across continuations) goes
    /// to `*pdone` when it is not NULL; a continuation advances `list` by
    /// `entry_size` per entry done and marks the rest of `count` with
    /// [`MMU_UPDATE_PREEMPTED`], as Xen does. An entry that answers
    /// `-ERESTART` (page-table validation ran out of its budget, XSA-45) is
    /// not done: the continuation starts again at that entry.
    pub(super) fn mmu_batch(
        &mut self,
        [list, count, pdone, foreigndom]: [u64; 4],
        entry_size: u64,
        budget: u64,
        mut one: impl FnMut(&mut Self, u64) -> Result<(), Errno>,
    ) -> HcResult {
        let mut count = count & 0xffff_ffff;
        let mut done = 0u64;
        if count & MMU_UPDATE_PREEMPTED != 0 {
            count &= !MMU_UPDATE_PREEMPTED;
            if pdone != 0 {
                done = self.guest_mem().ok_or(Errno::ESRCH)?.read_u32(pdone)? as u64;
            }
        }
        let (i, end) = run(0, count, budget, |i| one(self, i));
        if pdone != 0 {
            self.guest_mem().ok_or(Errno::ESRCH)?.write_u32(pdone, (done + i) as u32)?;
        }
        match end {
            End::All => Ok(Done::Ret(0)),
            End::Failed(e) if e != Errno::ERESTART => Err(e),
            End::Failed(_) | End::Preempted => Ok(Done::Continue([
                list.wrapping_add(entry_size * i),
                (count - i) | MMU_UPDATE_PREEMPTED,
                pdone,
                foreigndom,
                0,
            ])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{run, End};

    #[test]
    fn a_batch_runs_to_its_count_stops_at_a_failure_and_yields_after_its_budget() {
        let mut seen = alloc::vec::Vec::new();
        let (i, end) = run(2, 5, 10, |i| -> Result<(), ()> {
            seen.push(i);
            Ok(())
        });
        assert_eq!((i, matches!(end, End::All), seen.as_slice()), (5, true, &[2, 3, 4][..]));
        let (i, end) = run(0, 9, 10, |i| if i == 4 { Err("bad") } else { Ok(()) });
        assert_eq!(i, 4, "the failed entry is not counted");
        assert!(matches!(end, End::Failed("bad")));
        let (i, end) = run(3, 100, 10, |_| Ok::<(), ()>(()));
        assert_eq!(i, 13, "ten entries from where the last run stopped");
        assert!(matches!(end, End::Preempted));
        let (i, end) = run(3, 13, 10, |_| Ok::<(), ()>(()));
        assert!(i == 13 && matches!(end, End::All), "exactly the budget left: finished, no continuation");
    }
}
