//! `multicall`: a batch of hypercalls in one entry, each result written back
//! into its `multicall_entry`.

use super::{ret, Done, HcResult};
use crate::platform::Platform;
use crate::xen::Xen;
use hypercall_abi::errno::Errno;
use hypercall_abi::mm::MulticallEntry;
use hypercall_abi::nr;

const ENTRY_SIZE: u64 = MulticallEntry::SIZE as u64;
const RESULT: u64 = core::mem::offset_of!(MulticallEntry, result) as u64;
const ARGS: u64 = core::mem::offset_of!(MulticallEntry, args) as u64;
/// Calls per entry into the hypervisor before a continuation.
const BUDGET: u64 = 64;

impl<P: Platform> Xen<P> {
    pub(super) fn do_multicall(&mut self, [list, nr_calls, ..]: [u64; 5]) -> HcResult {
        let nr_calls = nr_calls & 0xffff_ffff;
        for i in 0..nr_calls {
            if i == BUDGET {
                return Ok(Done::Continue([list.wrapping_add(i.wrapping_mul(ENTRY_SIZE)), nr_calls - i, 0, 0, 0]));
            }
            let entry = list.wrapping_add(i * ENTRY_SIZE);
            let mut raw = [0u8; MulticallEntry::SIZE];
            self.guest_mem().ok_or(Errno::ESRCH)?.copy_from_guest(entry, &mut raw)?;
            let call = MulticallEntry::from_bytes(&raw);
            let op = call.op;
            let args = [call.args[0], call.args[1], call.args[2], call.args[3], call.args[4]];
            if op == nr::IRET {
                return Ok(Done::Iret);
            }
            let result = if op == nr::MULTICALL {
                // No nesting: Xen refuses it too.
                Err(Errno::EINVAL)
            } else {
                self.dispatch(op, args)
            };
            let g = self.guest_mem().ok_or(Errno::ESRCH)?;
            match result {
                Ok(Done::Ret(v)) => g.write_u64(entry.wrapping_add(RESULT), v as u64)?,
                Err(e) => g.write_u64(entry.wrapping_add(RESULT), e.to_ret() as u64)?,
                // Not from `dispatch`: only a multicall's own `iret` entry.
                Ok(Done::Iret) => return Ok(Done::Iret),
                Ok(Done::Continue(a)) => {
                    // The call was preempted: store its progress in the entry
                    // and resume the batch from this entry.
                    for (k, v) in a.iter().enumerate() {
                        g.write_u64(entry.wrapping_add(ARGS + 8 * k as u64), *v)?;
                    }
                    return Ok(Done::Continue([entry, nr_calls - i, 0, 0, 0]));
                }
            }
            // A call that stopped this vCPU (block, shutdown) ends the batch.
            if !self.current_vcpu_runnable() {
                break;
            }
        }
        ret(0)
    }

    pub(crate) fn current_vcpu_runnable(&self) -> bool {
        self.current
            .and_then(|(d, v)| self.domains.get(&d)?.vcpus.get(v))
            .is_some_and(|vc| vc.state == crate::domain::RunState::Runnable)
    }
}
