//! `xen_start`: from the boot stub to Dom0 (Xen's `__start_xen`).

use x86_64::registers::control::Cr3;
use xen_core::build::BuildRequest;
use xen_core::cmdline::{strip_image_name, Options};
use xen_core::domain::DomId;
use xen_core::mm::{FrameTable, Mfn, PAGE_SIZE};
use xen_core::regs::GuestRegs;
use xen_core::Xen;

use super::multiboot::{self, MemRegion};
use super::paging::{phys_to_virt, virt_to_phys};
use super::platform::{Machine, SerialLog};
use super::{descriptors, entry, heap, image_phys_range, serial, stack, traps};

/// The boot map covers 4 GiB; the heap must lie inside it.
const BOOT_MAPPED: u64 = 4 << 30;

/// Dom0's first registers, kept off the stack that `enter_guest` overwrites.
static mut DOM0_ENTRY: GuestRegs = GuestRegs {
    r15: 0, r14: 0, r13: 0, r12: 0, rbp: 0, rbx: 0, r11: 0, r10: 0, r9: 0, r8: 0, rax: 0, rcx: 0, rdx: 0,
    rsi: 0, rdi: 0, entry_vector: 0, error_code: 0, rip: 0, cs: 0, rflags: 0, rsp: 0, ss: 0,
};

pub extern "C" fn xen_start(magic: u64, info_pa: u64) -> ! {
    serial::init();
    xen_core::log::set_sink(&SerialLog);
    if magic != multiboot::BOOTLOADER_MAGIC {
        traps::fatal("not loaded by a Multiboot loader");
    }
    let info = multiboot::parse(info_pa);
    let cmdline = strip_image_name(info.cmdline);
    let opts = Options::parse(cmdline);
    xen_core::log::set_threshold(opts.loglvl);
    xen_core::log::set_guest_threshold(opts.guest_loglvl);
    xen_core::info!("xen-core {} (Xen {}.{} x86-64 PV ABI)", env!("CARGO_PKG_VERSION"), 4, 17);
    xen_core::info!("Command line: {}", cmdline);

    let mut reserved = reserved_ranges(&info, info_pa);
    let (heap_start, heap_size) = choose_heap(&info, &reserved).unwrap_or_else(|| traps::fatal("no RAM for the heap"));
    // SAFETY: the range is usable RAM outside every reserved range, below
    // 4 GiB (direct-mapped by the boot tables), and given to nobody else.
    unsafe { heap::init(phys_to_virt(heap_start), heap_size) };
    let _ = reserved.push((heap_start, heap_start + heap_size));
    // A bzImage Dom0 kernel is unpacked into free RAM set aside until Dom0
    // is built, then handed to the frame allocator (Linux 6.1 needs 63 MiB
    // plus a 32 MiB XZ dictionary: more than the heap).
    let unpack_room = unpack_room_size(&info).map(|size| {
        let start = highest_free(&info, &reserved, size).unwrap_or_else(|| traps::fatal("no RAM to unpack the Dom0 kernel"));
        let _ = reserved.push((start, start + size));
        (start, size)
    });

    xen_core::info!("Xen-e820 RAM map:");
    for r in &info.memory {
        xen_core::info!(" {:016x} - {:016x} ({})", r.base, r.base + r.len, if r.usable { "usable" } else { "reserved" });
    }

    descriptors::init(stack::stack_top(), stack::ist_tops(), entry::idt_stubs_addr(), entry::STUB_SIZE);
    mask_legacy_pic();
    let features = super::cpu::init(
        entry::syscall_entry as *const () as u64,
        entry::syscall32_entry as *const () as u64,
        opts.smep,
        opts.smap,
    );
    xen_core::info!("CPU: SMEP {}, SMAP {}", on_off(features.smep), on_off(features.smap));
    let khz = super::time::calibrate();
    xen_core::info!("Detected {}.{:03} MHz processor (TSC)", khz / 1000, khz % 1000);
    let wall = super::time::read_rtc();
    xen_core::info!("Wallclock at boot: {} s since the epoch (CMOS RTC)", wall);

    let ram_top = info.memory.iter().filter(|r| r.usable).map(|r| r.base + r.len).max().unwrap_or(0);
    let mut frames = FrameTable::new(ram_top / PAGE_SIZE);
    add_free_ram(&mut frames, &info.memory, &reserved);
    // Below 1 MiB: legacy I/O memory Dom0 may map (Xen's dom_io).
    frames.set_io(Mfn(0), 256);
    xen_core::info!(
        "Memory: {} MiB usable, heap {} MiB at {:#x}, {} frames free",
        info.memory.iter().filter(|r| r.usable).map(|r| r.len).sum::<u64>() >> 20,
        heap_size >> 20,
        heap_start,
        frames.free_count()
    );

    let (idle_l4, slots) = super::paging::build_idle_tables(ram_top, alloc_table_frame, true);
    let (_, flags) = Cr3::read_raw();
    let frame = x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(idle_l4));
    // SAFETY: the idle tables map the direct map, which holds this code, its
    // stack and the heap; the identity map of the lower half goes away here.
    unsafe { Cr3::write_raw(frame, flags) };

    let (m2p_ptr, m2p_entries) = frames.m2p_storage();
    let m2p_pa = virt_to_phys(m2p_ptr as u64);
    let m2p_len = (m2p_entries as u64 * 8).next_multiple_of(4096);
    let mut slots = slots;
    slots[0] = super::paging::map_m2p(m2p_pa, m2p_len, alloc_table_frame);
    let e820 = info.memory.iter().map(|r| (r.base, r.len, r.ty)).collect();
    let machine = Machine { nr_frames: frames.len(), hypervisor_slots: slots, m2p: (m2p_pa, m2p_len), e820 };
    let mut xen = Xen::new(machine, frames, cmdline);
    let dom0 = build_dom0(&mut xen, &info, &opts, unpack_room);
    if let Some((start, size)) = unpack_room {
        xen.add_free_ram(Mfn(start / PAGE_SIZE), size / PAGE_SIZE);
    }
    let (regs, cr3) = xen.start(dom0).unwrap_or_else(|| traps::fatal("Dom0 has no vCPU"));
    *traps::XEN.lock() = Some(xen);
    xen_core::info!("Starting Dom0 at {:#x}", regs.rip);
    super::time::start_tick();
    if opts.debug_trap {
        xen_core::warn!("debug_trap: faulting in the hypervisor on purpose");
        // SAFETY: raises #UD, which the fatal-trap path handles; never returns.
        unsafe { core::arch::asm!("ud2") };
    }

    let frame = x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(cr3.maddr()));
    // SAFETY: Dom0's L4 was built with the hypervisor slots; DOM0_ENTRY is
    // written once, here, before the only entry into Dom0.
    unsafe {
        Cr3::write_raw(frame, flags);
        let slot = core::ptr::addr_of_mut!(DOM0_ENTRY);
        slot.write(regs);
        (*slot).sanitize_for_guest();
        entry::enter_guest(slot)
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Bytes to set aside for unpacking the Dom0 kernel, if it is a bzImage.
fn unpack_room_size(info: &multiboot::Info) -> Option<u64> {
    let kmod = info.modules.first()?;
    // SAFETY: as in `build_dom0`: module memory is reserved, direct-mapped
    // and never written.
    let kernel = unsafe { core::slice::from_raw_parts(phys_to_virt(kmod.start) as *const u8, (kmod.end - kmod.start) as usize) };
    let p = xen_core::build::bzimage_payload(kernel)?.ok()?;
    let scratch = p.scratch_len().ok()? as u64;
    Some((p.unpacked_len as u64 + scratch).next_multiple_of(2 << 20))
}

fn build_dom0(xen: &mut Xen<Machine>, info: &multiboot::Info, opts: &Options, room: Option<(u64, u64)>) -> DomId {
    let Some(kmod) = info.modules.first() else { traps::fatal("no Dom0 kernel: give one as the first module (-initrd)") };
    let slice = |m: &multiboot::Module| {
        // SAFETY: module memory is reserved (never in the frame allocator),
        // below 4 GiB and so direct-mapped, and never written.
        unsafe { core::slice::from_raw_parts(phys_to_virt(m.start) as *const u8, (m.end - m.start) as usize) }
    };
    let mut kernel = slice(kmod);
    if let Some(payload) = xen_core::build::bzimage_payload(kernel) {
        let unpacked = payload.and_then(|p| {
            xen_core::info!("Dom0 kernel: bzImage, {}-compressed, {} bytes unpacked", p.compression.name(), p.unpacked_len);
            let (start, size) = room.ok_or(pv_image::ImageError::OutputTooSmall)?;
            // SAFETY: `room` is free RAM set aside for this alone (outside the
            // heap, the frame allocator and every module), below 4 GiB and so
            // direct-mapped; nothing else refers to it until it is freed
            // after Dom0 is built.
            let room = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(start) as *mut u8, size as usize) };
            xen_core::build::unpack(&p, room)
        });
        match unpacked {
            Ok(elf) => kernel = elf,
            Err(e) => {
                xen_core::error!("Could not construct Dom0: bad kernel image: {}", e);
                traps::fatal("Could not set up DOM0 guest OS")
            }
        }
    }
    let module = info.modules.get(1).map(slice);
    let dom0_cmdline = strip_image_name(multiboot::cstr(kmod.string, 4096));
    let free = xen.free_frames();
    // Without dom0_mem, Dom0 gets what is free less a reserve for the
    // hypervisor (Xen keeps 1/16 or at least 128 MiB).
    let reserve = (free / 16).max((128 << 20) / PAGE_SIZE).min(free / 2);
    let nr_pages = opts.dom0_mem.map_or(free - reserve, |b| b / PAGE_SIZE).min(free.saturating_sub(64));
    xen_core::info!("*** Building a PV Dom0 ***");
    xen_core::info!(" Dom0 kernel: 64-bit, {} bytes; {} pages of memory", kernel.len(), nr_pages);
    let req = BuildRequest {
        domid: DomId::DOM0,
        name: "Dom0",
        privileged: true,
        kernel,
        module,
        cmdline: dom0_cmdline,
        nr_pages,
        max_vcpus: opts.dom0_max_vcpus,
        max_pages: u32::MAX as u64,
    };
    match xen.build_domain(&req) {
        Ok(()) => {
            xen_core::info!("Dom0 has maximum {} VCPUs", opts.dom0_max_vcpus);
            DomId::DOM0
        }
        Err(e) => {
            xen_core::error!("Could not construct Dom0: {}", e);
            traps::fatal("Could not set up DOM0 guest OS")
        }
    }
}

type Ranges = heapless::Vec<(u64, u64), 160>;

/// Physical ranges that must never be handed out: low memory, the image,
/// the Multiboot structures and the modules.
fn reserved_ranges(info: &multiboot::Info, info_pa: u64) -> Ranges {
    let (img_lo, img_hi) = image_phys_range();
    let page = |a: u64| (a & !0xfff, (a & !0xfff) + 0x2000);
    let mut r = Ranges::new();
    let _ = r.push((0, 1 << 20));
    let _ = r.push((img_lo, img_hi));
    for a in [info_pa, info.cmdline_pa, info.mmap_pa, info.mods_pa] {
        let _ = r.push(page(a));
    }
    for m in &info.modules {
        let _ = r.push((m.start & !0xfff, (m.end + 0xfff) & !0xfff));
        let _ = r.push(page(m.string));
    }
    r
}

fn overlaps(lo: u64, hi: u64, busy: &[(u64, u64)]) -> bool {
    busy.iter().any(|&(b_lo, b_hi)| lo < b_hi && b_lo < hi)
}

/// The heap: 1/32 of RAM (8 MiB to 256 MiB), from the highest free,
/// 2 MiB-aligned stretch below 4 GiB.
fn choose_heap(info: &multiboot::Info, busy: &[(u64, u64)]) -> Option<(u64, u64)> {
    let ram: u64 = info.memory.iter().filter(|r| r.usable).map(|r| r.len).sum();
    let size = (ram / 32).clamp(8 << 20, 256 << 20) & !0x1f_ffff;
    highest_free(info, busy, size).map(|s| (s, size))
}

/// The highest free, 2 MiB-aligned stretch of `size` bytes below 4 GiB.
fn highest_free(info: &multiboot::Info, busy: &[(u64, u64)], size: u64) -> Option<u64> {
    let mut best = None;
    for r in info.memory.iter().filter(|r| r.usable) {
        let hi = (r.base + r.len).min(BOOT_MAPPED) & !0x1f_ffff;
        let mut start = hi.saturating_sub(size);
        while start >= r.base.max(1 << 20) && start + size <= hi {
            if !overlaps(start, start + size, busy) {
                best = best.max(Some(start));
                break;
            }
            start = match start.checked_sub(2 << 20) {
                Some(s) => s,
                None => break,
            };
        }
    }
    best
}

fn add_free_ram(frames: &mut FrameTable, memory: &[MemRegion], busy: &[(u64, u64)]) {
    for r in memory.iter().filter(|r| r.usable) {
        let first = (r.base + 0xfff) / PAGE_SIZE;
        let last = (r.base + r.len) / PAGE_SIZE;
        let mut m = first;
        while m < last {
            let pa = m * PAGE_SIZE;
            if overlaps(pa, pa + PAGE_SIZE, busy) {
                m += 1;
                continue;
            }
            let run_start = m;
            while m < last && !overlaps(m * PAGE_SIZE, (m + 1) * PAGE_SIZE, busy) {
                m += 1;
            }
            frames.add_free(Mfn(run_start), m - run_start);
        }
    }
}

/// A zeroed 4 KiB frame from the heap for the idle page tables (kept forever).
fn alloc_table_frame() -> u64 {
    let layout = core::alloc::Layout::from_size_align(4096, 4096).unwrap_or_else(|_| traps::fatal("bad layout"));
    // SAFETY: the layout has non-zero size.
    let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        traps::fatal("out of heap for page tables");
    }
    virt_to_phys(p as u64)
}

/// The BIOS leaves the 8259 PICs on vectors 8-15, on top of CPU exceptions:
/// move them to 0x20-0x2f and mask every line (no device interrupts yet).
fn mask_legacy_pic() {
    use x86_64::instructions::port::Port;
    let out = |port: u16, v: u8| {
        // SAFETY: standard 8259 programming; no memory is involved.
        unsafe { Port::<u8>::new(port).write(v) }
    };
    out(0x20, 0x11);
    out(0xa0, 0x11);
    out(0x21, 0x20);
    out(0xa1, 0x28);
    out(0x21, 0x04);
    out(0xa1, 0x02);
    out(0x21, 0x01);
    out(0xa1, 0x01);
    out(0x21, 0xff);
    out(0xa1, 0xff);
}
