//! `workload=vcpu`: the virtual-CPU self-test.
//!
//! With pv-rt's trap table, exception stubs, callbacks and kernel stack in
//! place, it raises exceptions in kernel mode and checks the bounce frames
//! ([`exceptions`]); checks that FPU/SSE state survives hypercalls and
//! exceptions and that `fpu_taskswitch` gives #NM, sets segment bases and
//! installs a GDT ([`cpu_state`]); runs a user-mode task on its own page
//! table ([`user`]); brings a second vCPU up and lets it go down ([`smp`],
//! needs `dom0_max_vcpus=2` on the hypervisor's command line); then tries
//! hostile values ([`hostile`]), and shows the domain lives on.
//!
//! Every expected value is what Xen 4.17.7 (Debian's 4.17.7+13) gives a
//! 64-bit PV Dom0 under QEMU; the comments name the Xen code that decides
//! each. Values that depend on the layout (addresses) are printed with 8 hex
//! digits or more, which the differential tests mask.
//!
//! Also here: `workload=badstack` ([`badstack`]) and `workload=bench-vcpu`
//! ([`bench`]).

pub mod badstack;
pub mod bench;
mod cpu_state;
pub mod exceptions;
mod hostile;
pub mod hostile_cpu;
pub mod probe;
mod smp;
pub mod user;

use core::fmt;
use core::sync::atomic::Ordering;

use hypercall_abi::Errno;
use pv_rt::mm::Mm;
use pv_rt::{println, shared, traps};

use crate::check::Checks;

/// Where the self-test maps its pages (L4 slot 96): the shared_info page
/// first, then test pages; nothing else of ours is in this slot.
pub const TEST_VA: u64 = 0x0000_3000_0000_0000;

/// A machine-dependent number (an address): eight hex digits or more, so
/// that the differential tests mask it.
#[derive(PartialEq)]
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A small number best read in hex (a selector, an error code, a flag).
#[derive(PartialEq)]
pub struct HexS(pub u64);

impl fmt::Display for HexS {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A memory-manager result as a hypercall return value.
pub fn ret(r: Result<(), Errno>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_ret(),
    }
}

/// What the checks share.
pub struct Ctx {
    pub mm: Mm,
    pub checks: Checks,
    /// The user task's stack page, through its kernel alias (0: none yet).
    pub user_stack_alias: u64,
}

impl Ctx {
    pub fn eq<T: PartialEq + fmt::Display>(&mut self, name: &str, got: T, expected: T) -> bool {
        self.checks.eq(name, got, expected)
    }

    /// [`Ctx::eq`] with a name made by `format_args!`.
    pub fn eq_fmt<T: PartialEq + fmt::Display>(&mut self, name: fmt::Arguments, got: T, expected: T) -> bool {
        let mut s = heapless::String::<96>::new();
        // A name longer than the buffer is cut short, which still tells it apart.
        let _ = fmt::Write::write_fmt(&mut s, name);
        self.checks.eq(&s, got, expected)
    }

    pub fn mfn(&self, pfn: u64) -> u64 {
        self.mm.p2m(pfn).expect("frame handed out by the allocator has an mfn")
    }
}

/// What every vCPU workload needs first: the memory manager, shared_info
/// mapped (for `vcpu_info`: CR2, the event mask), events masked (we run as
/// a kernel with "interrupts off"), and our trap table, kernel stack and
/// callbacks registered with [`probe::handler`].
pub fn setup(name: &str) -> Option<Ctx> {
    let si = pv_rt::start_info();
    // SAFETY: the only memory manager of this kernel; pv-rt's entry has left
    // the bootstrap stack.
    let mut mm = match unsafe { Mm::new(si) } {
        Ok(mm) => mm,
        Err(e) => {
            println!("{}: cannot walk the initial page tables: {}", name, e);
            println!("Test result: FAILURE");
            return None;
        }
    };
    // SAFETY: TEST_VA is ours alone.
    if let Err(e) = unsafe { shared::map(&mut mm, TEST_VA) } {
        println!("{}: cannot map shared_info: {}", name, e);
        println!("Test result: FAILURE");
        return None;
    }
    println!("{}: vcpu_info[0].evtchn_upcall_mask at entry: {}", name, shared::upcall_mask(0));
    shared::set_upcall_mask(0, 1);
    // SAFETY: our kernel is built without a red zone, and the handler is
    // ready for every vector in the table.
    if let Err(e) = unsafe { traps::install(probe::handler) } {
        println!("{}: cannot install the trap table and callbacks: {}", name, e);
        println!("Test result: FAILURE");
        return None;
    }
    Some(Ctx { mm, checks: Checks::default(), user_stack_alias: 0 })
}

pub fn run(_cmd: &str) {
    let Some(mut ctx) = setup("vcpu") else { return };
    exceptions::run(&mut ctx);
    cpu_state::fpu(&mut ctx);
    cpu_state::segment_bases(&mut ctx);
    cpu_state::descriptor_tables(&mut ctx);
    user::run(&mut ctx);
    smp::run(&mut ctx);
    hostile::run(&mut ctx);

    // The domain lives on: exceptions are still delivered, user mode still
    // works, and nothing raised an event.
    let p = exceptions::trap_probe!("ud2");
    ctx.expect_trap("alive_ud2", &p, 6, None, false);
    user::take_log();
    let code = if ctx.user_stack_alias != 0 {
        // The bench task with a count of 1: one SYS_NOP, then SYS_EXIT(0).
        // SAFETY: the stack page's alias; user mode is not running.
        unsafe { core::ptr::write_volatile((ctx.user_stack_alias + 4096 - 16) as *mut u64, 1) };
        let mask = shared::upcall_mask(0);
        // SAFETY: the user page table made by user::run is still registered.
        let code = unsafe { traps::enter_user(user::bench_entry(), user::USER_STACK_TOP - 16, user::USER_RFLAGS) };
        shared::set_upcall_mask(0, mask);
        code
    } else {
        u64::MAX
    };
    ctx.eq("alive_user_mode", code, 0);
    ctx.eq("events_without_bindings", probe::EVENTS.load(Ordering::Relaxed), 0);
    ctx.checks.verdict();
}
