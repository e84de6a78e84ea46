//! The toolstack: the `xl` commands, the guests' consoles (Dom0 is their
//! back end) and the event loop that serves both.
//!
//! Dom0 never takes event upcalls: it keeps `evtchn_upcall_mask` set and
//! sleeps in `SCHEDOP_poll` on the ports it cares about (`VIRQ_CONSOLE` for
//! typed input, `VIRQ_DOM_EXC` for domains that shut down or die, and each
//! guest's console port), then clears their pending bits in shared_info
//! and looks at everything.

// A failed command has printed why; its caller only needs to know it failed.
#![allow(clippy::result_unit_err)]

use core::fmt::Write as _;
use core::ptr;
use core::sync::atomic::{fence, AtomicU64, Ordering};

use heapless::{Deque, String, Vec};
use hypercall_abi::console::{mask_out_idx, XenconsInterface};
use hypercall_abi::domctl::*;
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::{VIRQ_CONSOLE, VIRQ_DOM_EXC};
use hypercall_abi::mm::DOMID_FIRST_RESERVED;
use hypercall_abi::mm::{UVMF_INVLPG, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER};
use hypercall_abi::sched::{shutdown_reason_name, SHUTDOWN_crash, SHUTDOWN_poweroff, SHUTDOWN_reboot};
use hypercall_abi::shared_info::SharedInfo;
use hypercall_abi::start_info::StartInfo;
use hypercall_abi::{DomId, EvtchnPort};
use pv_rt::mm::Mm;
use pv_rt::println;

use crate::builder::{self, Scratch, Window};
use crate::cmdline;
use crate::config::{self, Action, DomainConfig, PATH_MAX};
use crate::cpio;
use crate::lineedit::{self, Editor, Event};
use crate::listing::{ListLine, TopLine, TOP_HEADER};
use crate::hv;
use crate::blkback::backend::{Blkback, PGRANTS_PER_VBD};
use crate::blkback::spec;
use crate::domain_tree;
use crate::xenstore::daemon::Xenstored;
use crate::host_files::{FileData, HostFiles};

/// Guests the toolstack can hold: more than the memory of a machine here
/// allows (each needs a MiB at least, and the hypervisor's own share). Their
/// console pages take one page of Dom0's address space each.
pub const MAX_GUESTS: usize = 1024;
/// `SCHEDOP_poll` takes at most 128 ports (Xen's do_poll): with more
/// guests, the rest are looked at every [`POLL_SHORT_NS`].
const POLL_PORTS: usize = 128;
const POLL_SHORT_NS: u64 = 20_000_000;
/// Dom0's own mappings, above its initial mapping: its shared_info, the
/// builder's window, then one console page per slot (L1 tables for all of
/// them are made at start).
const VA_BASE: u64 = 0x10_0000_0000;
const SHINFO_VA: u64 = VA_BASE;
const WINDOW_VA: u64 = VA_BASE + 0x1000;
const CONSOLE_VA: u64 = VA_BASE + 0x10000;
/// Keys typed while a command runs, kept for the prompt that follows it.
const TYPEAHEAD: usize = 4096;
/// The store daemon's ring pages, one per slot, after the console pages.
const STORE_VA: u64 = CONSOLE_VA + MAX_GUESTS as u64 * 4096;
/// blkback's ring pages (granted by the frontends), one per disk slot.
const BLK_VA: u64 = STORE_VA + MAX_GUESTS as u64 * 4096;
/// blkback's persistent grants: [`PGRANTS_PER_VBD`] pages per disk slot.
const PGRANT_VA: u64 = BLK_VA + MAX_GUESTS as u64 * 4096;
/// The end of Dom0's own mappings (L1 tables up to here are made at start).
const VA_END: u64 = PGRANT_VA + (MAX_GUESTS * PGRANTS_PER_VBD) as u64 * 4096;
/// A guest's console line is printed when it ends or reaches this length.
const LINE: usize = 200;
const PROMPT: &str = "xl> ";

const fn console_va(slot: usize) -> u64 {
    CONSOLE_VA + slot as u64 * 4096
}

struct Guest {
    domid: DomId,
    cfg: DomainConfig,
    /// Resolved path of the kernel in the initrd, for restarts.
    kernel: String<PATH_MAX>,
    /// Our end of the console's event channel.
    port: EvtchnPort,
    line: Vec<u8, LINE>,
    /// Shut down and handled (preserved), waiting for `xl destroy`.
    shut_down: bool,
    /// TSC when Dom0 read the guest's first console byte.
    first_output_tsc: Option<u64>,
    /// Xen system time (ns) when Dom0 unpaused it: its uptime starts here.
    started_ns: u64,
}

/// A guest whose action is `restart` but that crashed (or died otherwise
/// than by a poweroff or reboot it asked for) less than this long after it
/// started is not restarted: one that crashes at once would otherwise be
/// rebuilt for ever. A reboot the guest asked for is always honoured.
const RESTART_MIN_UPTIME_NS: u64 = 10_000_000_000;

pub struct Toolstack {
    initrd: &'static [u8],
    guests: [Option<Guest>; MAX_GUESTS],
    scratch: Scratch,
    virq_console: EvtchnPort,
    virq_dom_exc: EvtchnPort,
    /// The prompt's line editor: what is typed at `xl>`.
    editor: Editor,
    /// Bytes typed but not yet given to the editor: while a command runs,
    /// typed lines wait here (they never run inside the command).
    typeahead: Deque<u8, TYPEAHEAD>,
    /// The typeahead was full during this command and keys were dropped.
    typeahead_lost: bool,
    /// ^C was typed while a command ran: long commands stop.
    interrupted: bool,
    interactive: bool,
    poweroff: bool,
    /// Something was printed since the prompt (guest output, domain news).
    printed: bool,
    /// A command is running (no prompt to redraw).
    busy: bool,
    /// `repeat -q` and `bench`: only errors are printed.
    quiet: bool,
    /// Domain ids set aside for domains that `${domid:NAME}` named before
    /// they ran; NAME is created with its id.
    reserved: Vec<(String<{ config::NAME_MAX }>, DomId), MAX_GUESTS>,
    /// The last domain id we were given or chose: where the next free one
    /// is looked for (Xen's `domctl.c` keeps the same kind of rover).
    rover: DomId,
    /// The domain `start` built last, and the TSC just before it unpaused it.
    last_created: Option<(DomId, u64)>,
    /// The first console byte of the last guest that printed one: its domain
    /// and the TSC when Dom0 read it (`bench create`).
    first_output: Option<(DomId, u64)>,
    /// `top`: each domain's CPU time at the previous refresh, and the
    /// list being filled for the next (kept here, not on the stack).
    top_prev: Vec<(DomId, u64), { MAX_GUESTS + 1 }>,
    top_next: Vec<(DomId, u64), { MAX_GUESTS + 1 }>,
    /// The store daemon (Dom0 serves XenStore, see `xenstore`).
    xs: Xenstored,
    /// `xl console`: the slot whose console has the terminal.
    attached: Option<usize>,
    /// The block back end and its images.
    blk: Blkback,
    /// COM2 answers: xl requests from the host are served (`xl_host`).
    pub(crate) host: bool,
    /// Files the host sent, looked up before the initrd's.
    pub(crate) host_files: HostFiles,
}

/// What a command reports: `Err` after it printed why it failed.
type CmdResult = Result<(), ()>;

pub(crate) fn xerr(args: core::fmt::Arguments) {
    crate::host_channel::as_error(|| println!("xl: {}", args));
}

macro_rules! fail {
    ($($t:tt)*) => {{ xerr(format_args!($($t)*)); return Err(()); }};
}

/// `println!` unless the toolstack is quiet (`repeat -q`, `bench`).
macro_rules! say {
    ($ts:expr, $($t:tt)*) => {{ if !$ts.quiet { println!($($t)*); } }};
}

impl Toolstack {
    pub const fn new() -> Self {
        Toolstack {
            initrd: &[],
            guests: [const { None }; MAX_GUESTS],
            scratch: Scratch::new(),
            virq_console: 0,
            virq_dom_exc: 0,
            editor: Editor::new(PROMPT),
            typeahead: Deque::new(),
            typeahead_lost: false,
            interrupted: false,
            interactive: false,
            poweroff: false,
            printed: false,
            busy: false,
            quiet: false,
            reserved: Vec::new(),
            rover: 0,
            last_created: None,
            first_output: None,
            top_prev: Vec::new(),
            top_next: Vec::new(),
            xs: Xenstored::new(STORE_VA, MAX_GUESTS),
            attached: None,
            blk: Blkback::new(BLK_VA, PGRANT_VA, MAX_GUESTS),
            host: false,
            host_files: HostFiles::new(),
        }
    }

    /// Maps shared_info and the windows, binds the VIRQs, finds the initrd.
    pub fn init(&mut self, si: &StartInfo, mm: &mut Mm) -> Result<(), Errno> {
        let mut va = VA_BASE;
        while va < VA_END {
            mm.ensure_l1(va)?;
            va += 2 << 20;
        }
        let val = (si.shared_info & !0xfff) | _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;
        // SAFETY: VA_BASE is ours and unused; shared_info is our own page.
        hv::check(unsafe { hypercall_abi::guest::update_va_mapping(SHINFO_VA, val, UVMF_INVLPG) })?;
        // No upcalls: we poll (see the module comment). Xen's builder set the
        // mask already; we only make sure.
        // SAFETY: byte 1 of our vcpu_info is ours to write.
        unsafe { ptr::write_volatile((SHINFO_VA as *mut u8).add(1), 1) };
        self.virq_console = hv::bind_virq(VIRQ_CONSOLE)?;
        self.virq_dom_exc = hv::bind_virq(VIRQ_DOM_EXC)?;
        self.host = crate::host_channel::init();
        self.xs.start();
        crate::disk::store::init();
        if let Err(e) = domain_tree::init_dom0(&mut self.xs) {
            println!("xenstored: writing Domain-0's nodes failed: {}", e);
        }
        if si.mod_len > 0 {
            // SAFETY: without XEN_ELFNOTE_MOD_START_PFN the builder maps the
            // module at the virtual address `mod_start`, for good.
            self.initrd = unsafe { core::slice::from_raw_parts(si.mod_start as *const u8, si.mod_len as usize) };
        }
        Ok(())
    }

    fn shinfo(&self) -> *mut SharedInfo {
        SHINFO_VA as *mut SharedInfo
    }

    /// Xen's system time in ns, from our vcpu_info's time record and the TSC.
    pub(crate) fn now_ns(&self) -> u64 {
        let si = self.shinfo();
        loop {
            // SAFETY: shared_info is mapped for good at SHINFO_VA; Xen updates
            // the record under an odd version, so we read until it is stable.
            let (ver, t) = unsafe {
                let t = ptr::addr_of!((*si).vcpu_info[0].time);
                let ver = ptr::read_volatile(ptr::addr_of!((*t).version));
                fence(Ordering::Acquire);
                (ver, ptr::read_volatile(t))
            };
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let ver2 = unsafe { ptr::read_volatile(ptr::addr_of!((*si).vcpu_info[0].time.version)) };
            if ver & 1 != 0 || ver != ver2 {
                continue;
            }
            let mut delta = pv_rt::tsc::rdtsc_fenced().wrapping_sub(t.tsc_timestamp);
            if t.tsc_shift >= 0 {
                delta <<= t.tsc_shift;
            } else {
                delta >>= -t.tsc_shift;
            }
            return t.system_time + ((delta as u128 * t.tsc_to_system_mul as u128) >> 32) as u64;
        }
    }

    /// Clears `port`'s pending bit; says whether it was set.
    fn take_pending(&self, port: EvtchnPort) -> bool {
        let bit = 1u64 << (port % 64);
        // SAFETY: evtchn_pending lies in our shared_info; Xen sets bits with
        // locked instructions, so we clear them with one too.
        let word = unsafe { &*(ptr::addr_of_mut!((*self.shinfo()).evtchn_pending[port as usize / 64]) as *const AtomicU64) };
        word.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// The ports to sleep on, and whether every guest's is among them.
    fn ports(&self) -> (Vec<EvtchnPort, POLL_PORTS>, bool) {
        let mut p = Vec::new();
        let _ = p.push(self.virq_console);
        let _ = p.push(self.virq_dom_exc);
        let mut all = true;
        for g in self.guests.iter().flatten() {
            all &= p.push(g.port).is_ok();
        }
        for port in self.xs.ports().into_iter().chain(self.blk.ports()) {
            all &= p.push(port).is_ok();
        }
        (p, all)
    }

    /// Sleeps until an event or `deadline` (system time), then serves
    /// consoles, input and domain changes.
    fn pump(&mut self, deadline: u64) {
        let (ports, all) = self.ports();
        let now = self.now_ns();
        if deadline > now {
            // A timeout in the past would make Xen wake us at once; a second
            // at most keeps us looking even if an event were lost.
            let mut longest = if all { 1_000_000_000 } else { POLL_SHORT_NS };
            if self.host {
                // COM2 raises no event: it is looked at this often.
                longest = longest.min(crate::xl_host::poll_ns());
            }
            let _ = hv::poll(&ports, deadline.min(now + longest));
        }
        let input = self.take_pending(self.virq_console);
        let dom_exc = self.take_pending(self.virq_dom_exc);
        for slot in 0..MAX_GUESTS {
            if let Some(g) = &self.guests[slot] {
                let port = g.port;
                self.take_pending(port);
                self.drain(slot);
            }
        }
        for port in self.xs.ports().into_iter().chain(self.blk.ports()) {
            self.take_pending(port);
        }
        self.xs.serve();
        self.blk.poll_states(&mut self.xs);
        self.blk.serve();
        if input || self.interactive {
            self.read_input();
        }
        self.host_poll();
        if dom_exc {
            self.domains_changed();
        }
        // Output arrived under the prompt: draw it again, with what was typed.
        if self.interactive && !self.busy && core::mem::take(&mut self.printed) {
            self.editor.reprint(&mut term);
        }
    }

    // ---- consoles -------------------------------------------------------

    /// Copies out what guest `slot` wrote to its console ring, prints whole
    /// lines prefixed with its name, frees the ring space and tells it so.
    fn drain(&mut self, slot: usize) {
        let Some(g) = self.guests[slot].as_mut() else { return };
        let intf = console_va(slot) as *mut XenconsInterface;
        // SAFETY: the console page stays mapped while the guest is in the
        // table; the guest writes it concurrently, so every access is
        // volatile and we trust no index.
        let (mut cons, prod) = unsafe {
            (ptr::read_volatile(ptr::addr_of!((*intf).out_cons)), ptr::read_volatile(ptr::addr_of!((*intf).out_prod)))
        };
        // io/console.h: read the indices, then the data (rmb).
        fence(Ordering::Acquire);
        if prod.wrapping_sub(cons) > 2048 {
            // A guest that scribbled on its indices: skip what cannot be real.
            cons = prod.wrapping_sub(2048);
        }
        let moved = cons != prod;
        if moved && g.first_output_tsc.is_none() {
            let tsc = pv_rt::tsc::rdtsc_fenced();
            g.first_output_tsc = Some(tsc);
            self.first_output = Some((g.domid, tsc));
        }
        while cons != prod {
            // SAFETY: as above; the index is masked into the ring.
            let c = unsafe { ptr::read_volatile(ptr::addr_of!((*intf).out[mask_out_idx(cons)])) };
            cons = cons.wrapping_add(1);
            if self.attached == Some(slot) {
                // `xl console`: the guest's bytes as they come, but no
                // control characters that could drive our terminal.
                if c == b'\n' || c == b'\t' || c == 0x08 || (0x20..0x7f).contains(&c) || c >= 0x80 {
                    pv_rt::console::write_console(&[c]);
                }
                continue;
            }
            if c == b'\n' || g.line.is_full() {
                if !self.printed && self.interactive && !self.busy {
                    pv_rt::console::write_console(b"\n");
                }
                self.printed = true;
                if !self.quiet {
                    emit(&g.cfg.name, &g.line);
                }
                g.line.clear();
            }
            if c != b'\n' && c != b'\r' {
                let _ = g.line.push(c);
            }
        }
        if moved {
            // Done reading the data before handing the space back (mb).
            fence(Ordering::Release);
            // SAFETY: as above.
            unsafe { ptr::write_volatile(ptr::addr_of_mut!((*intf).out_cons), cons) };
            let _ = hv::evtchn_send(g.port);
        }
    }

    fn flush_line(&mut self, slot: usize) {
        if let Some(g) = self.guests[slot].as_mut() {
            if !g.line.is_empty() {
                if !self.quiet {
                    emit(&g.cfg.name, &g.line);
                }
                g.line.clear();
            }
        }
    }

    // ---- Dom0's own console input ----------------------------------------

    /// Takes what was typed into the typeahead; never runs a command, so a
    /// command that serves consoles (`sleep`, `wait`, `repeat`) cannot be
    /// entered again from inside itself. ^C while a command runs asks it to
    /// stop and drops the keys typed ahead.
    fn read_input(&mut self) {
        let mut buf = [0u8; 64];
        loop {
            let n = match hv::console_read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Some(slot) = self.attached {
                self.console_input(slot, &buf[..n]);
                continue;
            }
            if !self.interactive {
                continue;
            }
            for &c in &buf[..n] {
                if c == 0x03 && self.busy {
                    if !self.interrupted {
                        self.interrupted = true;
                        self.typeahead.clear();
                        pv_rt::console::write_console(b"^C\n");
                    }
                    continue;
                }
                if self.typeahead.push_back(c).is_err() && !self.typeahead_lost {
                    self.typeahead_lost = true;
                    xerr(format_args!("{} keys typed ahead already wait for the running command; more are dropped", TYPEAHEAD));
                }
            }
        }
    }

    /// Gives the typeahead to the line editor and runs each line it ends.
    fn serve_prompt(&mut self) {
        while let Some(c) = self.typeahead.pop_front() {
            match self.editor.feed(c, &mut term) {
                Event::None => continue,
                Event::Line => {
                    let line = self.editor.take_line();
                    self.run_typed(&line);
                }
                Event::TooLong => {
                    xerr(format_args!("the line is longer than {} characters: not run", lineedit::LINE_MAX))
                }
                Event::Interrupt => {}
                Event::Eof => {
                    println!("xl: end of input");
                    self.poweroff = true;
                }
            }
            if self.poweroff {
                return;
            }
            self.editor.start(&mut term);
        }
    }

    /// One typed line: its commands in turn, until one is interrupted.
    fn run_typed(&mut self, line: &[u8]) {
        let Ok(s) = core::str::from_utf8(line) else {
            xerr(format_args!("input is not UTF-8"));
            return;
        };
        self.busy = true;
        self.interrupted = false;
        self.typeahead_lost = false;
        for c in cmdline::commands(s) {
            let _ = self.run(c);
            if self.poweroff || self.interrupted {
                break;
            }
            // Let consoles and events through before the next command
            // (piped input has the next line waiting already).
            let now = self.now_ns();
            self.pump(now);
        }
        self.busy = false;
        self.interrupted = false;
        self.printed = false;
    }

    /// A command starts (typed or from the host): keys typed now wait,
    /// ^C interrupts it.
    pub(crate) fn begin_command(&mut self) {
        self.busy = true;
        self.interrupted = false;
        self.typeahead_lost = false;
    }

    pub(crate) fn end_command(&mut self) {
        self.busy = false;
        self.interrupted = false;
    }

    /// ^C from the host (`xl_host`).
    pub(crate) fn interrupt_command(&mut self) {
        if self.busy {
            self.interrupted = true;
        }
    }

    /// The kernels running guests were built from (needed for a restart).
    pub(crate) fn kernels_in_use(&self) -> alloc::vec::Vec<alloc::string::String> {
        self.guests.iter().flatten().map(|g| alloc::string::String::from(g.kernel.as_str())).collect()
    }

    // ---- domains that shut down or died ---------------------------------

    /// Before printing news the user did not ask for: leave the prompt's line.
    fn note_async(&mut self) {
        if self.interactive && !self.busy && !self.printed {
            pv_rt::console::write_console(b"\n");
        }
        self.printed = true;
    }

    fn domains_changed(&mut self) {
        for slot in 0..MAX_GUESTS {
            let Some(g) = &self.guests[slot] else { continue };
            let (domid, shut_down) = (g.domid, g.shut_down);
            match hv::getdomaininfo(domid) {
                Err(Errno::ESRCH) => {
                    self.flush_line(slot);
                    let name = self.name_of(slot);
                    if !self.quiet {
                        self.note_async();
                        println!("xl: domain {} ({}) is gone", name, domid);
                    }
                    self.forget(slot);
                }
                Ok(info) if !shut_down => {
                    if let Some(reason) = info.shutdown_reason() {
                        self.shut_down(slot, reason);
                    }
                }
                _ => {}
            }
        }
    }

    fn name_of(&self, slot: usize) -> String<{ config::NAME_MAX }> {
        self.guests[slot].as_ref().map(|g| g.cfg.name.clone()).unwrap_or_default()
    }

    /// xl's reaction to a shutdown: the configured action for the reason.
    fn shut_down(&mut self, slot: usize, reason: u32) {
        self.drain(slot);
        self.flush_line(slot);
        if !self.quiet {
            self.note_async();
        }
        let quiet = self.quiet;
        let now = self.now_ns();
        let Some(g) = self.guests[slot].as_mut() else { return };
        let action = match reason {
            SHUTDOWN_poweroff => g.cfg.on_poweroff,
            SHUTDOWN_reboot => g.cfg.on_reboot,
            SHUTDOWN_crash => g.cfg.on_crash,
            // suspend (no save here), watchdog, soft_reset: as a crash.
            _ => g.cfg.on_crash,
        };
        if !quiet {
            println!(
                "xl: domain {} ({}) has shut down, reason code {} ({}): action {}",
                g.cfg.name,
                g.domid,
                reason,
                shutdown_reason_name(reason).unwrap_or("?"),
                action.name()
            );
        }
        match action {
            Action::Preserve => g.shut_down = true,
            Action::Destroy => {
                let _ = self.destroy_slot(slot);
            }
            Action::Restart if reason != SHUTDOWN_reboot && now.saturating_sub(g.started_ns) < RESTART_MIN_UPTIME_NS => {
                println!(
                    "xl: domain {} ({}) shut down {} s after it started: not restarting it (it would restart for ever); preserved, 'destroy {}' removes it",
                    g.cfg.name,
                    g.domid,
                    now.saturating_sub(g.started_ns) / 1_000_000_000,
                    g.cfg.name
                );
                g.shut_down = true;
            }
            Action::Restart => {
                let (cfg, kernel) = (g.cfg.clone(), g.kernel.clone());
                if self.destroy_slot(slot).is_ok() {
                    let _ = self.start(cfg, &kernel);
                }
            }
        }
    }

    /// Drops our side of guest `slot`: console mapping and port, its store
    /// connection and nodes.
    fn forget(&mut self, slot: usize) {
        if let Some(g) = self.guests[slot].take() {
            if self.attached == Some(slot) {
                self.attached = None;
            }
            // Ring grants unmapped before the domain goes, else Xen could
            // not free its pages.
            self.blk.detach(&mut self.xs, g.domid, None);
            domain_tree::remove(&mut self.xs, g.domid);
            // SAFETY: nothing refers into the console page once the guest
            // is out of the table.
            let _ = unsafe { hv::unmap(console_va(slot)) };
            let _ = hv::evtchn_close(g.port);
        }
    }

    /// `xl destroy` of one of ours: last console output, our mappings
    /// dropped (else Xen could not free the domain), then destroydomain.
    fn destroy_slot(&mut self, slot: usize) -> CmdResult {
        self.drain(slot);
        self.flush_line(slot);
        let Some(g) = &self.guests[slot] else { return Err(()) };
        let (domid, name) = (g.domid, g.cfg.name.clone());
        self.forget(slot);
        if let Err(e) = hv::destroydomain(domid) {
            fail!("destroying domain {} ({}) failed: {}", name, domid, e);
        }
        Ok(())
    }

    // ---- commands ---------------------------------------------------------

    /// Runs unattended: `cmds` as typed, then power off. The first command
    /// that fails ends the script, unless `keep_going`; either way a failure
    /// is reported in one line that `scripts/run.sh` turns into its exit
    /// status. `false` when a command failed.
    pub fn run_script(&mut self, cmds: &str, keep_going: bool) -> bool {
        let mut failed = 0;
        for c in cmdline::commands(cmds) {
            println!("{}{}", PROMPT, c);
            if self.run(c).is_err() {
                failed += 1;
                if !keep_going {
                    println!("dom0: xl script failed: '{}' failed; the rest is not run (xl_keep_going runs it)", c);
                    return false;
                }
            }
            if self.poweroff {
                break;
            }
            // Let consoles and events through between commands.
            let now = self.now_ns();
            self.pump(now);
        }
        if failed > 0 {
            println!("dom0: xl script failed: {} command(s) failed", failed);
        }
        failed == 0
    }

    /// Interactive: a prompt on Xen's console until `poweroff`.
    pub fn interact(&mut self) {
        self.interactive = true;
        println!("xl: type 'help' for the commands");
        self.editor.start(&mut term);
        while !self.poweroff {
            let now = self.now_ns();
            self.pump(now + 1_000_000_000);
            self.serve_prompt();
            self.serve_host();
        }
    }

    /// One command line: `[xl] <command> [args...]`.
    pub fn run(&mut self, line: &str) -> CmdResult {
        // `repeat` takes the rest of the line as it is: commands of its own.
        if let Some(r) = cmdline::repeat(line) {
            return match r {
                Ok(r) => self.cmd_repeat(r),
                Err(usage) => fail!("{}", usage),
            };
        }
        let words = match cmdline::words(line) {
            Ok(w) => w,
            Err(e) => fail!("{}", e),
        };
        self.run_words(&words)
    }

    /// One command as words (`[xl] <command> [args...]`).
    pub(crate) fn run_words(&mut self, words: &[&str]) -> CmdResult {
        let mut w = words;
        if w.first() == Some(&"xl") {
            w = &w[1..];
        }
        let Some((&cmd, args)) = w.split_first() else { return Ok(()) };
        if matches!(args.first(), Some(&"-h" | &"--help")) && cmd != "help" {
            return help_for(cmd);
        }
        match cmd {
            "create" => self.cmd_create(args),
            "list" | "li" => self.cmd_list(args),
            "destroy" => self.cmd_destroy(args),
            "mem-set" | "mem-max" => self.cmd_mem(cmd, args),
            "pause" => self.with_domain(cmd, args, |_, d| hv::pausedomain(d)),
            "unpause" => self.with_domain(cmd, args, |_, d| hv::unpausedomain(d)),
            "shutdown" | "reboot" => self.cmd_shutdown(cmd, args),
            "info" => self.cmd_info(args),
            "uptime" => self.cmd_uptime(args),
            "top" => self.cmd_top(args),
            "dmesg" => self.cmd_dmesg(args),
            "sched-credit" => self.cmd_sched_credit(cmd, XEN_SCHEDULER_CREDIT, args),
            "sched-credit2" => self.cmd_sched_credit(cmd, XEN_SCHEDULER_CREDIT2, args),
            "help" | "-h" | "--help" => match args {
                [] => {
                    help();
                    Ok(())
                }
                [c] => help_for(c),
                _ => fail!("usage: xl help [command]"),
            },
            // Dom0's own additions.
            "sleep" => self.cmd_sleep(args),
            "wait" => self.cmd_wait(args),
            "bench" => self.cmd_bench(args),
            "ls" => self.cmd_ls(),
            "console" => self.cmd_console(args),
            "block-attach" | "block-detach" | "block-list" => self.cmd_block(cmd, args),
            "image-create" | "image-list" | "image-rm" => self.cmd_image(cmd, args),
            c if c.starts_with("xenstore-") => self.cmd_xenstore(c, args),
            "poweroff" => {
                self.poweroff = true;
                Ok(())
            }
            _ => fail!("unknown command '{}' (try 'help')", cmd),
        }
    }

    /// The domain `arg` names: one of ours by name, `Domain-0`, or an id
    /// that exists.
    pub(crate) fn resolve(&self, arg: &str) -> Result<DomId, ()> {
        if arg == "Domain-0" {
            return Ok(0);
        }
        if let Some(g) = self.guests.iter().flatten().find(|g| g.cfg.name.as_str() == arg) {
            return Ok(g.domid);
        }
        if let Ok(id) = arg.parse::<u16>() {
            if hv::getdomaininfo(id).is_ok() {
                return Ok(id);
            }
            fail!("there is no domain with id {}", id);
        }
        fail!("'{}' is not a domain name or id", arg)
    }

    fn slot_of(&self, domid: DomId) -> Option<usize> {
        self.guests.iter().position(|g| g.as_ref().is_some_and(|g| g.domid == domid))
    }

    fn with_domain(
        &mut self,
        cmd: &str,
        args: &[&str],
        f: impl Fn(&mut Self, DomId) -> Result<(), Errno>,
    ) -> CmdResult {
        let [arg] = args else { fail!("usage: xl {} <Domain>", cmd) };
        let d = self.resolve(arg)?;
        if d == 0 {
            fail!("{}: not for Domain-0", cmd);
        }
        if let Err(e) = f(self, d) {
            fail!("{} of domain {} failed: {}", cmd, arg, e);
        }
        Ok(())
    }

    fn cmd_destroy(&mut self, args: &[&str]) -> CmdResult {
        let [arg] = args else { fail!("usage: xl destroy <Domain>") };
        let d = self.resolve(arg)?;
        if d == 0 {
            fail!("destroy: not for Domain-0");
        }
        match self.slot_of(d) {
            Some(slot) => self.destroy_slot(slot),
            None => hv::destroydomain(d).map_err(|e| xerr(format_args!("destroying domain {} failed: {}", d, e))),
        }
    }

    /// A file of the initrd: the first of `candidates` that exists.
    /// Files the host sent come first (`xl create` from `scripts/xl.sh`).
    fn find_file<'a>(&self, candidates: &[&'a str]) -> Option<(&'a str, FileData)> {
        candidates.iter().find_map(|c| {
            let d = self.host_files.get(c).map(FileData::Host);
            d.or_else(|| cpio::find(self.initrd, c).map(FileData::Initrd)).map(|d| (*c, d))
        })
    }

    fn cmd_create(&mut self, args: &[&str]) -> CmdResult {
        let Some((&path, overrides)) = args.split_first() else {
            fail!("usage: xl create <ConfigFile> [key=value ...]")
        };
        let mut in_guests: String<PATH_MAX> = String::new();
        let mut with_cfg: String<PATH_MAX> = String::new();
        let mut in_guests_cfg: String<PATH_MAX> = String::new();
        let _ = write!(in_guests, "guests/{}", path);
        let _ = write!(with_cfg, "{}.cfg", path);
        let _ = write!(in_guests_cfg, "guests/{}.cfg", path);
        let Some((cfg_path, text)) = self.find_file(&[path, &in_guests, &in_guests_cfg, &with_cfg]) else {
            fail!("config file '{}' not found in Dom0's initrd (try 'ls')", path)
        };
        say!(self, "Parsing config from {}", cfg_path);
        let Ok(text) = core::str::from_utf8(&text) else { fail!("{}: not a text file", cfg_path) };
        let cfg = match config::parse(text, overrides.iter().copied()) {
            Ok(c) => c,
            Err(e) => fail!("{}: {}", cfg_path, e),
        };
        for w in &cfg.warnings {
            println!("{}: warning: {}", cfg_path, w);
        }
        // The kernel as named, else next to the config file.
        let dir = cfg_path.rsplit_once('/').map_or("", |(d, _)| d);
        let mut beside: String<PATH_MAX> = String::new();
        let _ = write!(beside, "{}/{}", dir, cfg.kernel);
        let kernel = match self.find_file(&[cfg.kernel.as_str(), &beside]) {
            Some((k, _)) => {
                let mut s: String<PATH_MAX> = String::new();
                let _ = s.push_str(k);
                s
            }
            None => fail!("{}: kernel '{}' not found in Dom0's initrd", cfg_path, cfg.kernel),
        };
        // The ramdisk likewise; kept resolved, for restarts.
        let mut cfg = cfg;
        if let Some(r) = cfg.ramdisk.take() {
            let mut beside: String<PATH_MAX> = String::new();
            let _ = write!(beside, "{}/{}", dir, r);
            match self.find_file(&[r.as_str(), &beside]) {
                Some((found, _)) => cfg.ramdisk = found.try_into().ok(),
                None => fail!("{}: ramdisk '{}' not found in Dom0's initrd", cfg_path, r),
            }
        }
        self.start(cfg, &kernel)
    }

    /// Builds, connects and unpauses a domain.
    fn start(&mut self, cfg: DomainConfig, kernel: &str) -> CmdResult {
        if self.guests.iter().flatten().any(|g| g.cfg.name == cfg.name) {
            fail!("a domain named '{}' already exists", cfg.name);
        }
        let Some(slot) = self.guests.iter().position(|g| g.is_none()) else {
            fail!("this toolstack runs at most {} guests", MAX_GUESTS)
        };
        let Some((_, image)) = self.find_file(&[kernel]) else { fail!("kernel '{}' not found", kernel) };
        let image: &[u8] = &image;
        let ramdisk = match &cfg.ramdisk {
            Some(r) => match self.find_file(&[r.as_str()]) {
                Some((_, rd)) => Some(rd),
                None => fail!("{}: ramdisk '{}' not found in Dom0's initrd", cfg.name, r),
            },
            None => None,
        };
        let mut disks: Vec<spec::DiskSpec, { config::MAX_DISKS }> = Vec::new();
        for d in &cfg.disks {
            match spec::parse(d) {
                Ok(s) => {
                    let _ = disks.push(s);
                }
                Err(why) => fail!("{}: disk '{}': {}", cfg.name, d, why),
            }
        }
        let want = self.choose_domid(&cfg)?;
        // The command line with `${domid:NAME}` expanded; the template stays
        // in the stored configuration for restarts.
        let mut built_cfg = cfg.clone();
        let lookup = |n: &str| {
            if n == cfg.name.as_str() && want != 0 {
                return Some(want);
            }
            self.running(n).or_else(|| self.reservation(n))
        };
        match config::expand(&cfg.cmdline, lookup) {
            Ok(c) => built_cfg.cmdline = c,
            Err(name) => fail!("{}: extra: no domain '{}' for ${{domid:{}}}", cfg.name, name, name),
        }
        let physinfo = match hv::physinfo() {
            Ok(p) => p,
            Err(e) => fail!("physinfo failed: {}", e),
        };
        let built = match builder::build(want, &built_cfg, image, ramdisk.as_deref(), crate::heap::free(), &mut self.scratch, &Window { va: WINDOW_VA }, &physinfo) {
            Ok(b) => b,
            Err(e) => fail!("cannot create domain '{}': {}", cfg.name, e),
        };
        let domid = built.domid;
        let connect = || -> Result<EvtchnPort, (&'static str, Errno)> {
            // SAFETY: the slot's page is free (no guest in the slot).
            unsafe { hv::map_foreign(console_va(slot), built.console_mfn, domid, true) }.map_err(|e| ("mapping its console", e))?;
            let port = hv::bind_interdomain(domid, built.console_port).map_err(|e| ("binding its console", e))?;
            Ok(port)
        };
        let port = match connect() {
            Ok(p) => p,
            Err((what, e)) => {
                // SAFETY: the page, if mapped, is referenced by nothing.
                let _ = unsafe { hv::unmap(console_va(slot)) };
                let _ = hv::destroydomain(domid);
                fail!("cannot create domain '{}': {} failed: {}", cfg.name, what, e);
            }
        };
        let serial = pv_rt::tsc::rdtsc_fenced();
        let new = domain_tree::NewDomain {
            domid,
            cfg: &cfg,
            store_mfn: built.store_mfn,
            store_port: built.store_port,
            console_mfn: built.console_mfn,
            console_port: built.console_port,
        };
        if let Err(e) = domain_tree::create(&mut self.xs, &new, serial) {
            domain_tree::remove(&mut self.xs, domid);
            // SAFETY: the console page is referenced by nothing yet.
            let _ = unsafe { hv::unmap(console_va(slot)) };
            let _ = hv::evtchn_close(port);
            let _ = hv::destroydomain(domid);
            fail!("cannot create domain '{}': writing its xenstore nodes failed: {}", cfg.name, e);
        }
        for d in &disks {
            if let Err(why) = self.blk.attach(&mut self.xs, domid, d) {
                self.blk.detach(&mut self.xs, domid, None);
                domain_tree::remove(&mut self.xs, domid);
                // SAFETY: the console page is referenced by nothing yet.
                let _ = unsafe { hv::unmap(console_va(slot)) };
                let _ = hv::evtchn_close(port);
                let _ = hv::destroydomain(domid);
                fail!("cannot create domain '{}': disk {}: {}", cfg.name, d.vdev, why);
            }
        }
        let mut k = String::new();
        let _ = k.push_str(kernel);
        say!(
            self,
            "xl: domain {} created: id {}, {} MiB, {} vCPU{}, kernel {} entry {:#x}",
            cfg.name,
            domid,
            cfg.memory,
            cfg.vcpus,
            if cfg.vcpus == 1 { "" } else { "s" },
            kernel,
            built.entry
        );
        if let Some(i) = self.reserved.iter().position(|(n, _)| *n == cfg.name) {
            self.reserved.swap_remove(i);
        }
        if want == 0 {
            self.rover = domid;
        }
        self.guests[slot] = Some(Guest {
            domid,
            cfg,
            kernel: k,
            port,
            line: Vec::new(),
            shut_down: false,
            first_output_tsc: None,
            started_ns: self.now_ns(),
        });
        self.last_created = Some((domid, pv_rt::tsc::rdtsc_fenced()));
        if let Err(e) = hv::unpausedomain(domid) {
            xerr(format_args!("unpausing domain {} failed: {}", domid, e));
            let _ = self.destroy_slot(slot);
            return Err(());
        }
        Ok(())
    }

    // ---- domain ids ---------------------------------------------------------

    fn running(&self, name: &str) -> Option<DomId> {
        self.guests.iter().flatten().find(|g| g.cfg.name.as_str() == name).map(|g| g.domid)
    }

    fn reservation(&self, name: &str) -> Option<DomId> {
        self.reserved.iter().find(|(n, _)| n.as_str() == name).map(|(_, id)| *id)
    }

    /// The next free domain id after the rover: not in use (the hypervisor
    /// knows no such domain) and not set aside.
    fn pick_domid(&mut self) -> Option<DomId> {
        let mut id = self.rover;
        for _ in 1..DOMID_FIRST_RESERVED {
            id = if id + 1 >= DOMID_FIRST_RESERVED { 1 } else { id + 1 };
            let taken = self.reserved.iter().any(|(_, r)| *r == id) || self.slot_of(id).is_some() || hv::getdomaininfo(id).is_ok();
            if !taken {
                self.rover = id;
                return Some(id);
            }
        }
        None
    }

    /// The id `cfg`'s domain asks the hypervisor for (0: its choice), and
    /// the ids its `${domid:NAME}` references need. A name that runs is
    /// its id; one that does not yet gets an id set aside, which its own
    /// `create` later asks for (`XEN_DOMCTL_createdomain` takes a wanted
    /// id), so two guests can name each other whichever starts first. A
    /// domain that names such a domain gets an id chosen by us as well,
    /// below the ones set aside, since the hypervisor's choice could fall
    /// on one of them.
    fn choose_domid(&mut self, cfg: &DomainConfig) -> Result<DomId, ()> {
        let forward = config::domid_refs(&cfg.cmdline).any(|n| self.running(n).is_none());
        let want = match self.reservation(&cfg.name) {
            Some(id) => id,
            None if forward || !self.reserved.is_empty() => {
                let Some(id) = self.pick_domid() else { fail!("no free domain id") };
                // Ours until the domain exists, so no later pick takes it.
                if self.reserved.push((cfg.name.clone(), id)).is_err() {
                    fail!("too many domain ids set aside (at most {})", MAX_GUESTS);
                }
                id
            }
            None => 0,
        };
        for n in config::domid_refs(&cfg.cmdline) {
            if self.running(n).is_some() || self.reservation(n).is_some() {
                continue;
            }
            let (Some(id), Ok(name)) = (self.pick_domid(), String::try_from(n)) else {
                fail!("{}: extra: cannot set a domain id aside for '{}'", cfg.name, n)
            };
            if self.reserved.push((name, id)).is_err() {
                fail!("too many domain ids set aside (at most {})", MAX_GUESTS);
            }
            say!(self, "xl: domain id {} set aside for '{}' (named by ${{domid:{}}} in {}'s extra)", id, n, n, cfg.name);
        }
        Ok(want)
    }

    fn cmd_list(&mut self, args: &[&str]) -> CmdResult {
        if let Some(rest) = args.strip_prefix(&["-l"]).or_else(|| args.strip_prefix(&["--long"])) {
            return self.cmd_list_long(rest);
        }
        let mut only: Vec<DomId, 8> = Vec::new();
        for a in args {
            let d = self.resolve(a)?;
            let _ = only.push(d);
        }
        let mut buf = [XenDomctlGetdomaininfo::default(); 16];
        let mut first: DomId = 0;
        loop {
            let n = match hv::getdomaininfolist(first, &mut buf) {
                Ok(n) => n,
                Err(e) => fail!("getdomaininfolist failed: {}", e),
            };
            // The header after the first answer: hypervisor lines that the
            // query lets out come before the table, not inside it.
            if first == 0 {
                println!("Name                                        ID   Mem VCPUs\tState\tTime(s)");
            }
            for info in &buf[..n] {
                if !only.is_empty() && !only.contains(&info.domain) {
                    continue;
                }
                let name: String<{ config::NAME_MAX }> = if info.domain == 0 {
                    String::try_from("Domain-0").unwrap_or_default()
                } else {
                    self.slot_of(info.domain).map(|s| self.name_of(s)).unwrap_or_else(|| String::try_from("(null)").unwrap_or_default())
                };
                println!("{}", ListLine { name: &name, info });
            }
            if n < buf.len() {
                break;
            }
            let Some(next) = buf[n - 1].domain.checked_add(1) else { break };
            first = next;
        }
        Ok(())
    }

    /// `xl info [name]`: the fields and order of Xen's `xl info`
    /// (tools/xl/xl_info.c), `%-23s: value`; with a name, only that value.
    /// host/release/version/machine are Dom0's own (xl reads uname()).
    /// `xl list -l`: the configuration of each guest of ours, in the JSON
    /// shape xl prints (an array of `{"domid", "config": {"c_info",
    /// "b_info", "on_*"}}`), holding what this toolstack knows.
    fn cmd_list_long(&mut self, args: &[&str]) -> CmdResult {
        let mut only: Vec<DomId, 8> = Vec::new();
        for a in args {
            let d = self.resolve(a)?;
            let _ = only.push(d);
        }
        println!("[");
        let mut first = true;
        for g in self.guests.iter().flatten() {
            if !only.is_empty() && !only.contains(&g.domid) {
                continue;
            }
            if !first {
                println!("    }},");
            }
            first = false;
            let c = &g.cfg;
            println!("    {{");
            println!("        \"domid\": {},", g.domid);
            println!("        \"config\": {{");
            println!("            \"c_info\": {{");
            println!("                \"type\": \"pv\",");
            println!("                \"name\": \"{}\"", Json(&c.name));
            println!("            }},");
            println!("            \"b_info\": {{");
            println!("                \"max_vcpus\": {},", c.vcpus);
            println!("                \"max_memkb\": {},", c.maxmem * 1024);
            println!("                \"target_memkb\": {},", c.memory * 1024);
            println!("                \"type.pv\": {{");
            println!("                    \"kernel\": \"{}\",", Json(&g.kernel));
            println!("                    \"cmdline\": \"{}\"", Json(&c.cmdline));
            println!("                }}");
            println!("            }},");
            println!("            \"on_poweroff\": \"{}\",", c.on_poweroff.name());
            println!("            \"on_reboot\": \"{}\",", c.on_reboot.name());
            println!("            \"on_crash\": \"{}\"", c.on_crash.name());
            println!("        }}");
        }
        if !first {
            println!("    }}");
        }
        println!("]");
        Ok(())
    }

    /// `xl top [-d <Delay>] [-i <Iterations>] [-b]`: xentop's table,
    /// refreshed every Delay seconds (default 3) while consoles are served,
    /// Iterations times (default: until ^C). CPU(%) is the share of a CPU
    /// since the previous refresh. The screen is cleared before each table
    /// unless -b (batch: tables one after the other, as `xentop -b`).
    fn cmd_top(&mut self, args: &[&str]) -> CmdResult {
        const USAGE: &str = "usage: xl top [-d <Delay>] [-i <Iterations>] [-b]";
        let (mut delay_ns, mut iterations, mut batch) = (3_000_000_000u64, u64::MAX, false);
        let mut it = args.iter();
        while let Some(&a) = it.next() {
            match a {
                "-d" | "--delay" => match it.next().and_then(|s| cmdline::parse_seconds(s)) {
                    Some(ns) if ns > 0 => delay_ns = ns,
                    _ => fail!("top: -d takes a delay in seconds above 0"),
                },
                "-i" | "--iterations" => match it.next().and_then(|s| s.parse::<u64>().ok()) {
                    Some(n) if n > 0 => iterations = n,
                    _ => fail!("top: -i takes a number of iterations above 0"),
                },
                "-b" | "--batch" => batch = true,
                _ => fail!("{}", USAGE),
            }
        }
        self.top_prev.clear();
        let mut prev_ns = self.now_ns();
        for n in 0..iterations {
            if n > 0 {
                let deadline = prev_ns + delay_ns;
                while self.now_ns() < deadline {
                    if self.interrupted {
                        return Ok(());
                    }
                    self.pump(deadline);
                }
            }
            let p = match hv::physinfo() {
                Ok(p) => p,
                Err(e) => fail!("physinfo failed: {}", e),
            };
            let now = self.now_ns();
            let elapsed = now.saturating_sub(prev_ns).max(1);
            // First the summary (a pass over every domain), then the rows (a
            // second pass), 16 domains a call: nothing big on the stack.
            let mut counts = [0usize; 7];
            self.each_domain(|_, i| {
                counts[0] += 1;
                for (k, bit) in [XEN_DOMINF_running, XEN_DOMINF_blocked, XEN_DOMINF_paused, XEN_DOMINF_dying, XEN_DOMINF_shutdown].iter().enumerate() {
                    counts[k + 1] += (i.flags & bit != 0) as usize;
                }
                counts[6] += (i.shutdown_reason() == Some(SHUTDOWN_crash)) as usize;
            })?;
            if !batch && self.interactive {
                // Home, clear the screen: xentop's refresh.
                pv_rt::console::write_bytes(b"\x1b[H\x1b[2J");
            }
            let (major, minor, extra) = pv_rt::banner::xen_version();
            println!("xentop - uptime {}   Xen {}.{}{}", Uptime(now / 1_000_000_000), major, minor, pv_rt::banner::c_str(&extra));
            println!(
                "{} domains: {} running, {} blocked, {} paused, {} crashed, {} dying, {} shutdown",
                counts[0], counts[1], counts[2], counts[3], counts[6], counts[4], counts[5].saturating_sub(counts[6])
            );
            let total_kib = p.total_pages.saturating_mul(4);
            println!(
                "Mem: {}k total, {}k used, {}k free    CPUs: {} @ {}MHz",
                total_kib,
                total_kib.saturating_sub(p.free_pages.saturating_mul(4)),
                p.free_pages.saturating_mul(4),
                p.nr_cpus,
                p.cpu_khz / 1000
            );
            println!("{}", TOP_HEADER);
            let mut next = core::mem::take(&mut self.top_next);
            next.clear();
            self.each_domain(|ts, info| {
                let before = ts.top_prev.iter().find(|(d, _)| *d == info.domain).map(|(_, t)| *t);
                let used = before.map_or(0, |t| info.cpu_time.saturating_sub(t));
                let cpu_permille = (used as u128 * 1000 / elapsed as u128) as u64;
                let _ = next.push((info.domain, info.cpu_time));
                let name = ts.domain_name(info.domain);
                println!("{}", TopLine { name: &name, info, cpu_permille, total_kib });
            })?;
            self.top_next = core::mem::replace(&mut self.top_prev, next);
            prev_ns = now;
        }
        Ok(())
    }

    /// Calls `f` with each domain the hypervisor knows, in id order.
    fn each_domain(&mut self, mut f: impl FnMut(&Self, &XenDomctlGetdomaininfo)) -> CmdResult {
        let mut buf = [XenDomctlGetdomaininfo::default(); 16];
        let mut first: DomId = 0;
        loop {
            let n = match hv::getdomaininfolist(first, &mut buf) {
                Ok(n) => n,
                Err(e) => fail!("getdomaininfolist failed: {}", e),
            };
            for info in &buf[..n] {
                f(self, info);
            }
            // A full answer: go on after its last id (none after 0xffff).
            if n < buf.len() {
                return Ok(());
            }
            match buf[n - 1].domain.checked_add(1) {
                Some(next) => first = next,
                None => return Ok(()),
            }
        }
    }

    /// The name `list` shows for a domain id.
    fn domain_name(&self, domid: DomId) -> String<{ config::NAME_MAX }> {
        if domid == 0 {
            return String::try_from("Domain-0").unwrap_or_default();
        }
        self.slot_of(domid).map(|s| self.name_of(s)).unwrap_or_else(|| String::try_from("(null)").unwrap_or_default())
    }

    /// `xl uptime [Domain ...]`: xl's table; Dom0's uptime is the
    /// hypervisor's system time, a guest's counts from its unpause.
    fn cmd_uptime(&mut self, args: &[&str]) -> CmdResult {
        let mut only: Vec<DomId, 8> = Vec::new();
        for a in args {
            let d = self.resolve(a)?;
            let _ = only.push(d);
        }
        let now = self.now_ns();
        println!("{:<33} {:>4} {}", "Name", "ID", "Uptime");
        if only.is_empty() || only.contains(&0) {
            println!("{:<33} {:>4} {}", "Domain-0", 0, Uptime(now / 1_000_000_000));
        }
        for g in self.guests.iter().flatten() {
            if only.is_empty() || only.contains(&g.domid) {
                println!("{:<33} {:>4} {}", g.cfg.name, g.domid, Uptime(now.saturating_sub(g.started_ns) / 1_000_000_000));
            }
        }
        Ok(())
    }

    fn cmd_info(&mut self, args: &[&str]) -> CmdResult {
        let only = match args {
            [] => None,
            [k] => Some(*k),
            _ => fail!("usage: xl info [field]"),
        };
        let p = match hv::physinfo() {
            Ok(p) => p,
            Err(e) => fail!("physinfo failed: {}", e),
        };
        let mut shown = false;
        let mut line = |k: &str, v: core::fmt::Arguments| match only {
            None => println!("{:<23}: {}", k, v),
            Some(o) if o == k => {
                shown = true;
                println!("{}", v)
            }
            Some(_) => {}
        };
        let version_string = |cmd: u32, len: usize, buf: &mut [u8; 1024]| -> bool {
            // SAFETY: each XENVER_* string command writes at most `len`
            // (<= 1024) bytes into `buf`.
            len <= buf.len() && unsafe { hypercall_abi::guest::xen_version(cmd, buf.as_mut_ptr()) } >= 0
        };
        use hypercall_abi::version::*;
        let (major, minor, extra) = pv_rt::banner::xen_version();
        let extra = pv_rt::banner::c_str(&extra);
        line("host", format_args!("dom0"));
        line("release", format_args!("{}", env!("CARGO_PKG_VERSION")));
        line("version", format_args!("xen-core dom0 {}", env!("CARGO_PKG_VERSION")));
        line("machine", format_args!("x86_64"));
        line("nr_cpus", format_args!("{}", p.nr_cpus));
        line("max_cpu_id", format_args!("{}", p.max_cpu_id));
        line("nr_nodes", format_args!("{}", p.nr_nodes));
        line("cores_per_socket", format_args!("{}", p.cores_per_socket));
        line("threads_per_core", format_args!("{}", p.threads_per_core));
        line("cpu_mhz", format_args!("{}.{:03}", p.cpu_khz / 1000, p.cpu_khz % 1000));
        let hw = p.hw_cap;
        line(
            "hw_caps",
            format_args!(
                "{:08x}:{:08x}:{:08x}:{:08x}:{:08x}:{:08x}:{:08x}:{:08x}",
                hw[0], hw[1], hw[2], hw[3], hw[4], hw[5], hw[6], hw[7]
            ),
        );
        let mut caps: String<96> = String::new();
        for (bit, name) in [
            (XEN_SYSCTL_PHYSCAP_pv, "pv"),
            (XEN_SYSCTL_PHYSCAP_hvm, "hvm"),
            (XEN_SYSCTL_PHYSCAP_hap, "hap"),
            (XEN_SYSCTL_PHYSCAP_shadow, "shadow"),
            (XEN_SYSCTL_PHYSCAP_gnttab_v1, "gnttab-v1"),
            (XEN_SYSCTL_PHYSCAP_gnttab_v2, "gnttab-v2"),
        ] {
            if p.capabilities & bit != 0 {
                let _ = write!(caps, " {}", name);
            }
        }
        line("virt_caps", format_args!("{}", caps.trim_start()));
        line("total_memory", format_args!("{}", p.total_pages / 256));
        line("free_memory", format_args!("{}", p.free_pages / 256));
        // No page sharing here, and no claims: what xl prints then.
        line("sharing_freed_memory", format_args!("0"));
        line("sharing_used_memory", format_args!("0"));
        line("outstanding_claims", format_args!("{}", p.outstanding_pages / 256));
        // One cpupool holds every CPU: none is free.
        line("free_cpus", format_args!("0"));
        line("xen_major", format_args!("{}", major));
        line("xen_minor", format_args!("{}", minor));
        line("xen_extra", format_args!("{}", extra));
        line("xen_version", format_args!("{}.{}{}", major, minor, extra));
        let mut buf = [0u8; 1024];
        if version_string(XENVER_capabilities, 1024, &mut buf) {
            line("xen_caps", format_args!("{}", pv_rt::banner::c_str(&buf)));
        }
        line("xen_scheduler", format_args!("{}", hv::sched_id().map_or("?", sched_name)));
        line("xen_pagesize", format_args!("4096"));
        let mut virt_start = 0u64;
        // SAFETY: XENVER_platform_parameters writes one u64 (virt_start).
        if unsafe { hypercall_abi::guest::xen_version(XENVER_platform_parameters, (&raw mut virt_start).cast()) } >= 0 {
            line("platform_params", format_args!("virt_start={:#x}", virt_start));
        }
        buf = [0; 1024];
        if version_string(XENVER_changeset, 64, &mut buf) {
            line("xen_changeset", format_args!("{}", pv_rt::banner::c_str(&buf[..64])));
        }
        buf = [0; 1024];
        if version_string(XENVER_commandline, 1024, &mut buf) {
            line("xen_commandline", format_args!("{}", pv_rt::banner::c_str(&buf)));
        }
        // xen_compile_info: compiler[64], compile_by[16], compile_domain[32],
        // compile_date[32].
        buf = [0; 1024];
        if version_string(XENVER_compile_info, 144, &mut buf) {
            line("cc_compiler", format_args!("{}", pv_rt::banner::c_str(&buf[..64])));
            line("cc_compile_by", format_args!("{}", pv_rt::banner::c_str(&buf[64..80])));
            line("cc_compile_domain", format_args!("{}", pv_rt::banner::c_str(&buf[80..112])));
            line("cc_compile_date", format_args!("{}", pv_rt::banner::c_str(&buf[112..144])));
        }
        line("xend_config_format", format_args!("4"));
        if only.is_some() && !shown {
            fail!("info: no field '{}'", only.unwrap_or(""));
        }
        Ok(())
    }

    /// `xl dmesg [-c]`: the hypervisor's console ring; `-c` then clears it.
    fn cmd_dmesg(&mut self, args: &[&str]) -> CmdResult {
        let clear = match args {
            [] => false,
            ["-c" | "--clear"] => true,
            _ => fail!("usage: xl dmesg [-c]"),
        };
        let mut buf = [0u8; 512];
        let mut index = None;
        // Xen's ring is at most a few MiB; a hypervisor that kept answering
        // would otherwise keep us here for good.
        let mut budget: usize = 16 << 20;
        loop {
            let (n, next) = match hv::readconsole(&mut buf, index, false) {
                Ok(r) => r,
                Err(e) => fail!("readconsole failed: {}", e),
            };
            pv_rt::console::write_bytes(&buf[..n]);
            budget = budget.saturating_sub(buf.len());
            // A short read reached the newest byte (Xen fills the buffer
            // otherwise).
            if n < buf.len() || budget == 0 || index == Some(next) {
                break;
            }
            index = Some(next);
        }
        // Xen clears after a read with `clear` set: one that reads nothing.
        if clear {
            if let Err(e) = hv::readconsole(&mut [], index, true) {
                fail!("clearing the console ring failed: {}", e);
            }
        }
        Ok(())
    }

    fn cmd_sched_credit(&mut self, cmd: &str, sched_id: u32, args: &[&str]) -> CmdResult {
        match hv::sched_id() {
            Ok(id) if id == sched_id => {}
            Ok(id) => fail!("{}: the hypervisor runs the {} scheduler", cmd, sched_name(id)),
            Err(e) => fail!("sched_id failed: {}", e),
        }
        let mut dom = None;
        let (mut weight, mut cap) = (None, None);
        let mut pool_only = false;
        let mut it = args.iter();
        while let Some(&a) = it.next() {
            let mut val = |what: &str| -> Result<u16, ()> {
                match it.next().and_then(|v| v.parse::<u16>().ok()) {
                    Some(v) => Ok(v),
                    None => fail!("{}: {} takes a number from 0 to 65535", cmd, what),
                }
            };
            match a {
                "-d" | "--domain" => dom = Some(*it.next().ok_or_else(|| xerr(format_args!("{}: -d takes a domain", cmd)))?),
                // xl refuses a weight of 0 (Xen's credit scheduler would
                // read it as 'unchanged' and keep the old one).
                "-w" | "--weight" => match val("-w")? {
                    0 => fail!("{}: the weight must be 1 to 65535", cmd),
                    w => weight = Some(w),
                },
                "-c" | "--cap" => cap = Some(val("-c")?),
                "-s" | "--schedparam" => pool_only = true,
                _ => fail!("usage: xl {} [-s] [-d <Domain> [-w <Weight>] [-c <Cap>]]", cmd),
            }
        }
        // One domain, or Dom0 then each guest of ours (by slot: no list of
        // them on the stack, which a full table would overflow).
        let one = match dom {
            Some(d) => Some(self.resolve(d)?),
            None => None,
        };
        if (weight.is_some() || cap.is_some()) && dom.is_none() {
            fail!("{}: -w/-c need -d <Domain>", cmd);
        }
        if pool_only && dom.is_some() {
            fail!("{}: -s and -d cannot go together", cmd);
        }
        // xl prints the pool's scheduler parameters first (one pool here:
        // Pool-0), and only them with -s; -d shows one domain without.
        if dom.is_none() {
            match (hv::scheduler_params(sched_id), sched_id) {
                (Ok([tslice, ratelimit, migr]), XEN_SCHEDULER_CREDIT) => {
                    println!("Cpupool Pool-0: tslice={}ms ratelimit={}us migration-delay={}us", tslice, ratelimit, migr)
                }
                (Ok([ratelimit, ..]), _) => println!("Cpupool Pool-0: ratelimit={}us", ratelimit),
                (Err(_), _) => println!("Cpupool Pool-0: [sched params unavailable]"),
            }
        }
        if pool_only {
            return Ok(());
        }
        println!("Name                                ID Weight  Cap");
        let row = |this: &Self, id: DomId| -> CmdResult {
            match hv::sched_credit(id, sched_id, weight, cap) {
                Ok(c) => println!("{:<32} {:>5} {:>6} {:>4}", this.domain_name(id), id, c.weight, c.cap),
                Err(e) => fail!("sched-credit of domain {} failed: {}", id, e),
            }
            Ok(())
        };
        if let Some(id) = one {
            return row(self, id);
        }
        row(self, 0)?;
        for slot in 0..MAX_GUESTS {
            if let Some(id) = self.guests[slot].as_ref().map(|g| g.domid) {
                row(self, id)?;
            }
        }
        Ok(())
    }

    fn cmd_sleep(&mut self, args: &[&str]) -> CmdResult {
        let ns = match args {
            [s] => cmdline::parse_seconds(s),
            _ => None,
        };
        let Some(ns) = ns else { fail!("usage: sleep <seconds>") };
        let deadline = self.now_ns() + ns;
        while self.now_ns() < deadline {
            if self.interrupted {
                fail!("sleep: interrupted");
            }
            self.pump(deadline);
        }
        Ok(())
    }

    /// `wait [Domain ...]`: until those guests (default: all) have shut
    /// down or are gone.
    fn cmd_wait(&mut self, args: &[&str]) -> CmdResult {
        let mut ids: Vec<DomId, MAX_GUESTS> = Vec::new();
        for a in args {
            // A guest that is already gone needs no waiting for.
            match self.guests.iter().flatten().find(|g| g.cfg.name.as_str() == *a || a.parse() == Ok(g.domid)) {
                Some(g) => {
                    let _ = ids.push(g.domid);
                }
                None => println!("xl: wait: {} is not running (gone already, or never created)", a),
            }
        }
        if !args.is_empty() && ids.is_empty() {
            return Ok(());
        }
        loop {
            let waiting = self.guests.iter().flatten().any(|g| !g.shut_down && (ids.is_empty() || ids.contains(&g.domid)));
            if !waiting {
                return Ok(());
            }
            if self.interrupted {
                fail!("wait: interrupted");
            }
            let now = self.now_ns();
            self.pump(now + 1_000_000_000);
        }
    }

    /// `repeat [-q] N commands`: runs the commands N times, stopping at the
    /// first that fails. Quiet, it prints only errors and a progress line
    /// every tenth of the way.
    fn cmd_repeat(&mut self, r: cmdline::Repeat) -> CmdResult {
        let was_quiet = self.quiet;
        self.quiet |= r.quiet;
        let step = (r.count / 10).max(1);
        let mut result = Ok(());
        'all: for i in 1..=r.count {
            for c in cmdline::commands(r.body) {
                say!(self, "{}{}", PROMPT, c);
                if self.interrupted {
                    println!("repeat: interrupted at iteration {} of {}", i, r.count);
                    result = Err(());
                    break 'all;
                }
                if self.run(c).is_err() {
                    println!("repeat: iteration {} of {}: '{}' failed; stopping", i, r.count, c);
                    result = Err(());
                    break 'all;
                }
                if self.poweroff {
                    break 'all;
                }
                // Let consoles and events through between commands.
                let now = self.now_ns();
                self.pump(now);
            }
            if r.quiet && i % step == 0 {
                println!("repeat: {}/{}", i, r.count);
            }
        }
        self.quiet = was_quiet;
        if result.is_ok() {
            println!("repeat: {} iteration(s) of '{}' done", r.count, r.body);
        }
        result
    }

    /// `bench create|destroy <cfg> [N] [key=value ...]`, in TSC ticks (under
    /// `-icount shift=0`, instructions of the whole machine):
    /// - `xl_create`: from the `create` command to Dom0 reading the guest's
    ///   first console byte: the toolstack's build, the hypervisor's domain
    ///   creation, the guest's boot up to its first line, and the console
    ///   relay; the guest is destroyed afterwards, untimed.
    /// - `xl_create_build`: the part of `xl_create` up to unpausing the
    ///   guest (config, builder, console connection).
    /// - `xl_destroy`: `destroy` of a guest that runs (it has printed and not
    ///   shut down, such as guests/idle.cfg's, which waits in `SCHEDOP_poll`).
    fn cmd_bench(&mut self, args: &[&str]) -> CmdResult {
        const USAGE: &str = "usage: bench create|destroy <ConfigFile> [iterations] [key=value ...]";
        let [what, cfg, rest @ ..] = args else { fail!("{}", USAGE) };
        let destroy = match *what {
            "create" => false,
            "destroy" => true,
            _ => fail!("{}", USAGE),
        };
        let (n, overrides) = match rest.first().map(|w| w.parse::<u64>()) {
            Some(Ok(n)) => (n, &rest[1..]),
            Some(Err(_)) if !rest[0].contains('=') => fail!("{}", USAGE),
            _ => (20, rest),
        };
        if n == 0 {
            fail!("{}", USAGE);
        }
        let mut create_args: Vec<&str, { cmdline::MAX_WORDS }> = Vec::new();
        let _ = create_args.push(cfg);
        let _ = create_args.extend_from_slice(overrides);
        let was_quiet = core::mem::replace(&mut self.quiet, true);
        let r = self.bench_rounds(destroy, n, &create_args);
        self.quiet = was_quiet;
        let (total, build) = r?;
        let line = |name: &str, total: u64| {
            println!("bench {} iterations={} total_tsc={} per_call_tsc={}", name, n, total, total / n)
        };
        if destroy {
            line("xl_destroy", total);
        } else {
            line("xl_create", total);
            line("xl_create_build", build);
        }
        Ok(())
    }

    /// `n` rounds of create, first console byte, destroy; returns the TSC
    /// ticks of the part measured and, of `create`, those up to the unpause
    /// (the toolstack's build, without the guest's boot).
    fn bench_rounds(&mut self, destroy: bool, n: u64, create_args: &[&str]) -> Result<(u64, u64), ()> {
        let (mut total, mut build) = (0u64, 0u64);
        for _ in 0..n {
            if self.interrupted {
                fail!("bench: interrupted");
            }
            self.last_created = None;
            let t0 = pv_rt::tsc::rdtsc_fenced();
            self.cmd_create(create_args)?;
            let Some((domid, built)) = self.last_created else { fail!("bench: no domain was created") };
            build += built - t0;
            let deadline = self.now_ns() + 30_000_000_000;
            let first = loop {
                if let Some((d, tsc)) = self.first_output {
                    if d == domid {
                        break tsc;
                    }
                }
                if self.interrupted {
                    fail!("bench: interrupted");
                }
                if self.now_ns() >= deadline {
                    fail!("bench: domain {} printed nothing within 30 s", domid);
                }
                self.pump(deadline);
            };
            let slot = self.slot_of(domid);
            if !destroy {
                total += first - t0;
                if let Some(slot) = slot {
                    self.destroy_slot(slot)?;
                }
            } else {
                let running = slot.and_then(|s| self.guests[s].as_ref()).is_some_and(|g| !g.shut_down)
                    && hv::getdomaininfo(domid).is_ok_and(|i| i.shutdown_reason().is_none());
                if !running {
                    fail!("bench destroy: domain {} shut down by itself; it needs a guest that keeps running (guests/idle.cfg)", domid);
                }
                let name = self.name_of(slot.unwrap_or(0));
                let t1 = pv_rt::tsc::rdtsc_fenced();
                self.cmd_destroy(&[name.as_str()])?;
                total += pv_rt::tsc::rdtsc_fenced() - t1;
            }
            // What the guest's end caused (VIRQ_DOM_EXC), before the next round.
            let now = self.now_ns();
            self.pump(now);
        }
        Ok((total, build))
    }

    fn cmd_ls(&mut self) -> CmdResult {
        if self.initrd.is_empty() {
            fail!("Dom0 has no initrd");
        }
        for e in cpio::Reader::new(self.initrd) {
            match e {
                Ok(e) if e.is_file() => println!("{:>9}  {}", e.data.len(), e.name),
                Ok(_) => {}
                Err(e) => fail!("the initrd is not a cpio newc archive: {:?}", e),
            }
        }
        Ok(())
    }

    /// `xl console`: gives the terminal to domain `domid`'s console.
    pub(crate) fn attach_console(&mut self, domid: DomId) -> bool {
        self.attached = self.slot_of(domid);
        self.attached.is_some()
    }

    pub(crate) fn console_attached(&self) -> bool {
        self.attached.is_some()
    }

    /// Typed bytes while attached: into the guest's `in` ring, up to
    /// Ctrl-], which detaches.
    fn console_input(&mut self, slot: usize, bytes: &[u8]) {
        let (data, detach) = match bytes.iter().position(|&b| b == crate::xl_console::DETACH) {
            Some(i) => (&bytes[..i], true),
            None => (bytes, false),
        };
        if let Some(g) = &self.guests[slot] {
            // SAFETY: the console page stays mapped while the guest is in
            // the table.
            let n = unsafe { crate::xl_console::put_input(console_va(slot) as *mut XenconsInterface, data) };
            if n > 0 {
                let _ = hv::evtchn_send(g.port);
            }
        }
        if detach {
            self.attached = None;
        }
    }

    /// The block back end, for `xl block-*`.
    pub(crate) fn blkback(&mut self) -> (&mut Blkback, &mut Xenstored) {
        (&mut self.blk, &mut self.xs)
    }

    /// Whether domain `domid` is one of this toolstack's guests.
    pub(crate) fn is_ours(&self, domid: DomId) -> bool {
        self.slot_of(domid).is_some()
    }

    /// The store daemon, for Dom0's own store commands.
    pub(crate) fn xenstored(&mut self) -> &mut Xenstored {
        &mut self.xs
    }

    /// Serves consoles, the store and input until `deadline` (system time)
    /// or the next event.
    pub(crate) fn serve_until(&mut self, deadline: u64) {
        self.pump(deadline);
    }

    pub fn powering_off(&self) -> bool {
        self.poweroff
    }

    /// Before Dom0 goes: destroy every guest, so none outlives the toolstack
    /// with a console nobody reads.
    pub fn shutdown_all(&mut self) {
        for slot in 0..MAX_GUESTS {
            if self.guests[slot].is_some() {
                let _ = self.destroy_slot(slot);
            }
        }
    }
}

impl Default for Toolstack {
    fn default() -> Self {
        Self::new()
    }
}

fn sched_name(id: u32) -> &'static str {
    match id {
        XEN_SCHEDULER_CREDIT => "credit",
        XEN_SCHEDULER_CREDIT2 => "credit2",
        XEN_SCHEDULER_RTDS => "rtds",
        XEN_SCHEDULER_NULL => "null",
        XEN_SCHEDULER_ARINC653 => "arinc653",
        _ => "?",
    }
}

/// Prints `[name] line` in one console write.
fn emit(name: &str, line: &[u8]) {
    let mut out: Vec<u8, { LINE + config::NAME_MAX + 4 }> = Vec::new();
    let _ = out.push(b'[');
    let _ = out.extend_from_slice(name.as_bytes());
    let _ = out.extend_from_slice(b"] ");
    for &c in line {
        // Control characters from a guest must not drive our terminal.
        let _ = out.push(if c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80 { c } else { b'.' });
    }
    let _ = out.push(b'\n');
    pv_rt::console::write_console(&out);
}

/// Every command: name, usage (its arguments), what it does. Dom0's own
/// additions (not in Xen's xl) come after the empty row.
const COMMANDS: &[(&str, &str, &str)] = &[
    ("create", "<ConfigFile> [key=value ...]", "Create a domain from config file <ConfigFile>; key=value pairs override the file's"),
    ("list", "[-l] [Domain ...]", "List information about all/some domains; -l: their configuration, as JSON"),
    ("destroy", "<Domain>", "Terminate a domain immediately"),
    ("shutdown", "[-F] [-T <Seconds>] <Domain>", "Issue a shutdown signal to a domain (control/shutdown) and wait for it; -F: force it after the timeout (default 10 s)"),
    ("reboot", "[-F] [-T <Seconds>] <Domain>", "Issue a reboot signal to a domain (same options)"),
    ("mem-set", "<Domain> <Mem>", "Set the current memory usage for a domain (its balloon driver gives or takes pages); Mem in MiB, or with a b/k/m/g/t suffix"),
    ("mem-max", "<Domain> <Mem>", "Set the maximum amount of memory for a domain"),
    ("pause", "<Domain>", "Pause execution of a domain"),
    ("unpause", "<Domain>", "Unpause a paused domain"),
    ("info", "[field]", "Get information about Xen host; with a field name (xen_version, free_memory, ...), only its value"),
    ("uptime", "[Domain ...]", "Print uptime for all/some domains"),
    ("top", "[-d <Delay>] [-i <Iterations>] [-b]", "Monitor a host and the domains in real time, as xentop: refreshed every Delay seconds (default 3), Iterations times (default until ^C); -b: no screen clearing"),
    ("console", "<Domain>", "Attach to domain's console (Ctrl-] detaches)"),
    ("block-attach", "<Domain> <disk-spec>", "Create a new virtual block device"),
    ("block-detach", "[-f] <Domain> <DevId|vdev>", "Destroy a domain's virtual block device"),
    ("block-list", "<Domain>", "List virtual block devices for a domain"),
    ("dmesg", "[-c]", "Read and/or clear dmesg buffer; -c: clear it after reading"),
    ("sched-credit", "[-s] [-d <Domain> [-w <Weight>] [-c <Cap>]]", "Get/set credit scheduler parameters; -s: the cpupool's (time slice, rate limit, migration delay)"),
    ("sched-credit2", "[-s] [-d <Domain> [-w <Weight>] [-c <Cap>]]", "Get/set credit2 scheduler parameters; -s: the cpupool's (rate limit)"),
    ("help", "[command]", "Print this help, or a command's"),
    ("", "", ""),
    ("ls", "", "Dom0: list the files of Dom0's initrd (guest kernels and configs)"),
    ("sleep", "<seconds>", "Dom0: serve consoles for <seconds>; ^C stops it"),
    ("wait", "[Domain ...]", "Dom0: serve consoles until the domains (default all) have shut down; ^C stops it"),
    ("repeat", "[-q] <N> <command...>", "Dom0: run the command(s) N times ('cmd; cmd' quoted), stopping at the first that fails; -q: errors and progress only"),
    ("bench", "create|destroy <ConfigFile> [N] [key=value ...]", "Dom0: TSC per xl create (to the guest's first console byte) or per destroy of a running guest"),
    ("poweroff", "", "Dom0: destroy every guest and power off (^D on an empty line does the same)"),
    ("image-create", "[-f raw|qcow2] <Name> [Size]", "Dom0: make an image on Dom0's disk (default qcow2, 8M; Size as 64M, 1G); a disk= target names it"),
    ("image-list", "", "Dom0: the images on Dom0's disk: format, virtual size, bytes used, the domains using it"),
    ("image-rm", "<Name>", "Dom0: remove an image no domain uses"),
    ("", "", ""),
    ("xenstore-ls", "[-f] [-p] [Path]", "The store's tree below Path (default /)"),
    ("xenstore-read", "Path...", "The values"),
    ("xenstore-write", "Path Value [Path Value...]", "Write the values"),
    ("xenstore-rm", "Path...", "Remove the nodes and all below them"),
    ("xenstore-watch", "[-n Count] [-T Seconds] Path", "Print the watch's events (default: 1 more than the first, 10 s)"),
];

fn help() {
    println!("Usage xl <subcommand> [args]");
    println!();
    println!("xl full list of subcommands:");
    println!();
    for (c, _, what) in COMMANDS {
        if c.is_empty() {
            println!();
        } else {
            println!(" {:<17}{}", c, what);
        }
    }
    println!();
    println!("'help <subcommand>' or '<subcommand> --help' shows its options.");
}

/// `help CMD`, `CMD --help`: xl's usage block for one command.
fn help_for(cmd: &str) -> Result<(), ()> {
    let cmd = if cmd == "li" { "list" } else { cmd };
    let Some((c, usage, what)) = COMMANDS.iter().find(|(c, _, _)| !c.is_empty() && *c == cmd) else {
        fail!("unknown command '{}' (try 'help')", cmd)
    };
    println!("Usage: xl {} {}", c, usage);
    println!();
    println!("{}.", what);
    Ok(())
}

/// The line editor's output: Dom0's console.
fn term(bytes: &[u8]) {
    pv_rt::console::write_console(bytes);
}

/// A string inside JSON quotes: `"` and `\` escaped, control characters
/// as `\u00XX`.
struct Json<'a>(&'a str);

impl core::fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Seconds as xl's uptime prints them: `H:MM:SS`, with `N days, ` first
/// when there are any.
struct Uptime(u64);

impl core::fmt::Display for Uptime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.0;
        let (days, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
        if days > 0 {
            write!(f, "{} day{}, ", days, if days == 1 { "" } else { "s" })?;
        }
        write!(f, "{:2}:{:02}:{:02}", h, m, sec)
    }
}
