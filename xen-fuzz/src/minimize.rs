//! Shrinking a finding: drop chunks of steps (halving the chunk size down
//! to one step, as delta debugging does) while a replay still ends in a
//! finding of the same kind.

use crate::machine::{replay, replay_noting_known, Finding};
use crate::step::Step;

/// The finding `steps` replays to, if any.
pub fn reproduce(steps: &[Step]) -> Option<(usize, Finding)> {
    replay(steps).err()
}

/// A shorter sequence with a finding of the same kind as `steps` has.
pub fn minimize(steps: &[Step]) -> Vec<Step> {
    minimize_avoiding(steps, false)
}

/// [`minimize`]; with `avoid_known`, never shrink onto the open shared_info
/// escape (a candidate whose replay puts shared_info in use as a page table
/// is refused), so that a new finding is not mistaken for the known one.
pub fn minimize_avoiding(steps: &[Step], avoid_known: bool) -> Vec<Step> {
    let reproduce = |s: &[Step]| match replay_noting_known(s) {
        Err((i, f, known)) if !(avoid_known && known) => Some((i, f)),
        _ => None,
    };
    let Some((at, f)) = reproduce(steps) else { return steps.to_vec() };
    let kind = f.kind();
    // Nothing after the finding matters.
    let mut cur: Vec<Step> = steps[..(at + 1).min(steps.len())].to_vec();
    let mut chunk = cur.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        let mut progressed = false;
        while i < cur.len() {
            let end = (i + chunk).min(cur.len());
            let mut cand = cur[..i].to_vec();
            cand.extend_from_slice(&cur[end..]);
            match reproduce(&cand) {
                Some((at, f)) if f.kind() == kind => {
                    cand.truncate(at + 1);
                    cur = cand;
                    progressed = true;
                }
                _ => i += chunk,
            }
        }
        if chunk == 1 && !progressed {
            return cur;
        }
        if !progressed {
            chunk = chunk.div_ceil(2).max(1);
        }
    }
}
