//! The PV domain builder (Xen's `dom0_construct_pv`, for the images this
//! hypervisor boots itself).
//!
//! The guest gets its kernel mapped at its ELF addresses, the initial
//! ramdisk, its P2M list, start_info, page tables it may read but not write,
//! and a boot stack, all inside one region mapped 1:1 onto its first
//! pseudo-physical pages (see [`Layout`]). Frame types and counts are set as
//! if every mapping had been made through the checked paths, so the domain
//! starts with the invariants of docs/architecture.md already holding.

use alloc::string::String;
use alloc::vec::Vec;
use core::mem::offset_of;

use pv_image::elf::{self, ElfError, KernelImage};
use super::layout::Layout;
use crate::domain::{DomId, Domain, RunState, Vcpu};
use crate::mm::pte::*;
use crate::mm::validate::Mm;
use crate::mm::{FrameTable, Mfn, Owner, PageType};
use crate::platform::Platform;
use crate::regs::{GuestRegs, RFLAGS_IF};
use hypercall_abi::arch::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64};
use hypercall_abi::start_info::*;

pub struct BuildRequest<'a> {
    pub domid: DomId,
    pub name: &'a str,
    pub privileged: bool,
    pub kernel: &'a [u8],
    /// The initial ramdisk (Dom0: the boot module after its kernel).
    pub module: Option<&'a [u8]>,
    pub cmdline: &'a str,
    pub nr_pages: u64,
    /// vCPUs the domain may bring up; vCPU 0 starts running.
    pub max_vcpus: u32,
    /// The most memory it may balloon up to (Xen gives Dom0 `~0U` pages).
    pub max_pages: u64,
}

pub struct Built {
    pub domain: Domain,
    pub layout: Layout,
    pub entry: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    Elf(ElfError),
    /// The image is not for this kind of domain.
    Unsupported(String),
    /// The image's addresses are impossible (overlap the hypervisor, overflow...).
    BadImage(&'static str),
    /// `nr_pages` cannot hold the initial mapping.
    TooSmall { needed: u64, have: u64 },
    OutOfMemory,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Elf(e) => write!(f, "bad kernel image: {e}"),
            BuildError::Unsupported(s) => write!(f, "unsupported kernel: {s}"),
            BuildError::BadImage(s) => write!(f, "bad kernel image: {s}"),
            BuildError::TooSmall { needed, have } => {
                write!(f, "insufficient memory for the initial mapping: {needed} pages needed, {have} given")
            }
            BuildError::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

/// Intermediate entries, and leaves for everything but the page tables
/// (Xen's `L?_PROT` for 64-bit PV: user, because the kernel runs in ring 3).
const TABLE_PROT: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;
const PAGE_PROT: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED;

pub fn build_pv_domain<P: Platform>(p: &P, ft: &mut FrameTable, req: &BuildRequest) -> Result<Built, BuildError> {
    let image = elf::parse(req.kernel).map_err(BuildError::Elf)?;
    let plan = plan(&image, req)?;
    let mut frames = Vec::new();
    let result = construct(p, ft, req, &image, &plan, &mut frames);
    if result.is_err() {
        // Give back everything taken so far: a failed build leaks nothing.
        for mfn in frames {
            ft.release(mfn);
        }
    }
    result
}

struct Plan {
    virt_offset: u64,
    layout: Layout,
    entry: u64,
    hypercall_page: Option<u64>,
}

fn plan(image: &KernelImage, req: &BuildRequest) -> Result<Plan, BuildError> {
    // The same checks and arithmetic as Dom0's DomU builder (pv-image).
    let p = pv_image::place(image).map_err(|e| match e {
        pv_image::PlaceError::Unsupported(s) => BuildError::Unsupported(s),
        pv_image::PlaceError::BadImage(s) => BuildError::BadImage(s),
    })?;
    if image.notes.mod_start_pfn {
        crate::debug!("{}: kernel accepts MOD_START_PFN; mapping the ramdisk anyway", req.name);
    }
    let initrd_len = req.module.map_or(0, |m| m.len() as u64);
    let layout = Layout::compute(p.virt_base, p.vkern_start, p.vkern_end, initrd_len, req.nr_pages)
        .ok_or(BuildError::BadImage("layout overflows"))?;
    if !guest_range_ok(layout.v_start, layout.v_end - layout.v_start) {
        return Err(BuildError::BadImage("initial mapping overlaps the hypervisor or is not canonical"));
    }
    if layout.pages() > req.nr_pages {
        return Err(BuildError::TooSmall { needed: layout.pages(), have: req.nr_pages });
    }
    Ok(Plan { virt_offset: p.virt_offset, layout, entry: p.entry, hypercall_page: p.hypercall_page })
}

/// Copy bytes to a guest virtual address of the initial region. The
/// builder writes the new domain's frames before it ever runs, and its
/// page tables are validated (and typed) only after the last write, so
/// these writes need no type reference; only `shared_info`, which the
/// hypervisor keeps writing later, is a `SharedPage`.
fn copy_in<P: Platform>(p: &P, p2m: &[Mfn], l: &Layout, mut va: u64, mut data: &[u8]) {
    while !data.is_empty() {
        let off = (va & 0xfff) as usize;
        let n = (4096 - off).min(data.len());
        p.write(p2m[l.pfn_of(va) as usize], off, &data[..n]);
        va += n as u64;
        data = &data[n..];
    }
}

fn construct<P: Platform>(
    p: &P,
    ft: &mut FrameTable,
    req: &BuildRequest,
    image: &KernelImage,
    plan: &Plan,
    frames: &mut Vec<Mfn>,
) -> Result<Built, BuildError> {
    let l = &plan.layout;
    let owner = Owner::Dom(req.domid);
    for _ in 0..req.nr_pages {
        frames.push(ft.alloc(p, owner).ok_or(BuildError::OutOfMemory)?);
    }
    let shared_info = ft.alloc_shared(p, req.domid).ok_or(BuildError::OutOfMemory)?;
    frames.push(shared_info.mfn());
    let p2m: Vec<Mfn> = frames[..req.nr_pages as usize].to_vec();

    for seg in &image.segments {
        let va = seg.paddr.wrapping_add(plan.virt_offset);
        let bytes = &req.kernel[seg.offset as usize..(seg.offset + seg.filesz) as usize];
        copy_in(p, &p2m, l, va, bytes);
    }
    if let Some(m) = req.module {
        copy_in(p, &p2m, l, l.vinitrd_start, m);
    }
    for (pfn, mfn) in p2m.iter().enumerate() {
        copy_in(p, &p2m, l, l.vphysmap_start + 8 * pfn as u64, &mfn.0.to_le_bytes());
    }
    if let Some(hp) = plan.hypercall_page {
        let mut page = [0u8; 4096];
        hypercall_abi::hypercall_page::fill(&mut page);
        copy_in(p, &p2m, l, hp, &page);
    }

    for (pfn, mfn) in p2m.iter().enumerate() {
        ft.set_m2p(*mfn, pfn as u64);
    }
    let l4 = build_page_tables(p, ft, req.domid, &p2m, l)?;

    // Every vCPU starts with events masked until the guest is ready (Xen sets
    // evtchn_upcall_mask in each vcpu_info).
    shared_info.shared_info(p).mask_all_upcalls();

    let si = start_info_bytes(req, l, shared_info.mfn());
    copy_in(p, &p2m, l, l.vstartinfo_start, &si);

    let regs = GuestRegs {
        rip: plan.entry,
        rsp: l.vstack_end,
        rsi: l.vstartinfo_start,
        rflags: RFLAGS_IF | 0x2,
        cs: FLAT_KERNEL_CS64 as u64,
        ss: FLAT_KERNEL_SS64 as u64,
        ..GuestRegs::default()
    };
    log_arrangement(req, l, plan.entry);
    let domain = Domain {
        id: req.domid,
        name: String::from(req.name),
        privileged: req.privileged,
        max_pages: req.max_pages.max(req.nr_pages),
        tot_pages: req.nr_pages,
        shared_info,
        p2m,
        vcpus: boot_vcpus(req.max_vcpus, regs, l4),
        shutdown: None,
        shutdown_code: None,
        vm_assist: 0,
        evtchn: crate::evtchn::Ports::new(if req.privileged {
            crate::evtchn::EVTCHN_2L_NR_CHANNELS
        } else {
            crate::evtchn::DEFAULT_MAX_PORTS_DOMU
        }),
        gnttab: crate::gnttab::GrantTable::default(),
        weight: 256,
        cap: 0,
        pause_count: 0,
        created_ns: 0,
        io: Default::default(),
        pirq_eoi_map: None,
        fifo: None,
    };
    Ok(Built { domain, layout: *l, entry: plan.entry })
}

/// vCPU 0 starts at the kernel's entry; the others wait, down, for
/// `VCPUOP_initialise` and `VCPUOP_up`.
fn boot_vcpus(max_vcpus: u32, regs: GuestRegs, l4: Mfn) -> alloc::vec::Vec<Vcpu> {
    (0..max_vcpus.max(1))
        .map(|id| {
            let mut v = Vcpu::new(id);
            if id == 0 {
                v.regs = regs;
                v.cr3 = l4;
                v.state = RunState::Runnable;
                v.initialised = true;
                v.runstate.state = hypercall_abi::vcpu::RUNSTATE_running;
            }
            v
        })
        .collect()
}

/// Map `[v_start, v_end)` onto pfns 0.. with tables taken from the page-table
/// area, the tables themselves read-only; then validate the whole tree by
/// pinning the L4, exactly as a guest's own pin would, and take the vCPU's
/// CR3 reference. Returns the L4.
fn build_page_tables<P: Platform>(
    p: &P,
    ft: &mut FrameTable,
    dom: DomId,
    p2m: &[Mfn],
    l: &Layout,
) -> Result<Mfn, BuildError> {
    let pt_first = l.pfn_of(l.vpt_start) as usize;
    let mut pt_frames = p2m[pt_first..pt_first + l.nr_pt_pages as usize].iter().copied();
    let l4 = pt_frames.next().ok_or(BuildError::BadImage("no page-table area"))?;
    let mut va = l.v_start;
    while va < l.v_end {
        let l3 = walk_or_alloc(p, l4, l4_index(va), &mut pt_frames)?;
        let l2 = walk_or_alloc(p, l3, l3_index(va), &mut pt_frames)?;
        let l1 = walk_or_alloc(p, l2, l2_index(va), &mut pt_frames)?;
        let is_table = (l.vpt_start..l.vpt_end).contains(&va);
        // Invariant 2: page tables are mapped, but never writable.
        let prot = if is_table { PAGE_PROT & !_PAGE_RW } else { PAGE_PROT };
        p.write_u64(l1, l1_index(va), p2m[l.pfn_of(va) as usize].maddr() | prot);
        va += 4096;
    }
    let mut mm = Mm::new(p, ft, p.hypervisor_l4_slots());
    mm.pin(l4, dom, PageType::L4).map_err(|e| {
        crate::error!("initial page tables failed validation: {}", e.name());
        BuildError::BadImage("initial page tables do not validate")
    })?;
    mm.get_page_and_type(l4, dom, PageType::L4).map_err(|_| BuildError::BadImage("L4 reference"))?;
    Ok(l4)
}

fn walk_or_alloc<P: Platform>(
    p: &P,
    table: Mfn,
    index: usize,
    pt_frames: &mut impl Iterator<Item = Mfn>,
) -> Result<Mfn, BuildError> {
    let e = p.read_u64(table, index);
    if e & _PAGE_PRESENT != 0 {
        return Ok(Mfn(entry_mfn(e)));
    }
    let child = pt_frames.next().ok_or(BuildError::BadImage("page-table area too small"))?;
    p.write_u64(table, index, child.maddr() | TABLE_PROT);
    Ok(child)
}

fn start_info_bytes(req: &BuildRequest, l: &Layout, shared_info: Mfn) -> Vec<u8> {
    let mut b = alloc::vec![0u8; core::mem::size_of::<StartInfo>()];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(offset_of!(StartInfo, magic), START_INFO_MAGIC);
    put(offset_of!(StartInfo, nr_pages), &req.nr_pages.to_le_bytes());
    put(offset_of!(StartInfo, shared_info), &shared_info.maddr().to_le_bytes());
    // Dom0 also learns which processor power management it may drive
    // (Xen: `xen_processor_pmbits << 8`, P- and C-states by default).
    let flags = if req.privileged { SIF_PRIVILEGED | SIF_INITDOMAIN | (0x3 << 8) } else { 0 };
    put(offset_of!(StartInfo, flags), &flags.to_le_bytes());
    put(offset_of!(StartInfo, pt_base), &l.vpt_start.to_le_bytes());
    put(offset_of!(StartInfo, nr_pt_frames), &l.nr_pt_pages.to_le_bytes());
    put(offset_of!(StartInfo, mfn_list), &l.vphysmap_start.to_le_bytes());
    if let Some(m) = req.module {
        put(offset_of!(StartInfo, mod_start), &l.vinitrd_start.to_le_bytes());
        put(offset_of!(StartInfo, mod_len), &(m.len() as u64).to_le_bytes());
    }
    let cmd = req.cmdline.as_bytes();
    let n = cmd.len().min(MAX_GUEST_CMDLINE - 1);
    put(offset_of!(StartInfo, cmd_line), &cmd[..n]);
    b
}

fn log_arrangement(req: &BuildRequest, l: &Layout, entry: u64) {
    crate::info!("PHYSICAL MEMORY ARRANGEMENT:");
    crate::info!(" {} alloc.:   {} pages", req.name, req.nr_pages);
    crate::info!("VIRTUAL MEMORY ARRANGEMENT:");
    crate::info!(" Loaded kernel: {:016x}->{:016x}", l.vkern_start, l.vkern_end);
    if l.vinitrd_end > l.vinitrd_start {
        crate::info!(" Init. ramdisk: {:016x}->{:016x}", l.vinitrd_start, l.vinitrd_end);
    }
    crate::info!(" Phys-Mach map: {:016x}->{:016x}", l.vphysmap_start, l.vphysmap_end);
    crate::info!(" Start info:    {:016x}->{:016x}", l.vstartinfo_start, l.vstartinfo_end);
    crate::info!(" Page tables:   {:016x}->{:016x}", l.vpt_start, l.vpt_end);
    crate::info!(" Boot stack:    {:016x}->{:016x}", l.vstack_start, l.vstack_end);
    crate::info!(" TOTAL:         {:016x}->{:016x}", l.v_start, l.v_end);
    crate::info!(" ENTRY ADDRESS: {:016x}", entry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pv_image::elf::test_image::{build, Note};
    use crate::guest_access::GuestMem;
    use crate::mm::MachineMemory;
    use crate::testing::HostPlatform;
    use hypercall_abi::elfnote::*;

    fn kernel() -> Vec<u8> {
        build(
            0x100000,
            &[0xf4; 64],
            0x3000,
            0x100000,
            &[
                Note { ty: XEN_ELFNOTE_HYPERCALL_PAGE, desc: &0x101000u64.to_le_bytes() },
                Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" },
                Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" },
            ],
        )
    }

    fn setup(frames: u64) -> (HostPlatform, FrameTable) {
        let p = HostPlatform::new(frames as usize);
        let mut ft = FrameTable::new(frames);
        ft.add_free(Mfn(16), frames - 16);
        (p, ft)
    }

    fn request<'a>(k: &'a [u8], module: Option<&'a [u8]>, nr_pages: u64) -> BuildRequest<'a> {
        BuildRequest { domid: DomId(0), name: "Dom0", privileged: true, kernel: k, module, cmdline: "workload=banner", nr_pages, max_vcpus: 1, max_pages: 0 }
    }

    #[test]
    fn dom0_starts_with_xens_start_info_and_mappings() {
        let (p, mut ft) = setup(4096);
        let k = kernel();
        let built = build_pv_domain(&p, &mut ft, &request(&k, Some(b"module!"), 2048)).unwrap();
        let d = &built.domain;
        let v = &d.vcpus[0];
        let g = GuestMem::new(&p, v.cr3, ft.len());
        let si = v.regs.rsi;
        let mut magic = [0u8; 14];
        g.copy_from_guest(si, &mut magic).unwrap();
        assert_eq!(&magic, b"xen-3.0-x86_64");
        assert_eq!(g.read_u64(si + offset_of!(StartInfo, nr_pages) as u64).unwrap(), 2048);
        assert_eq!(g.read_u32(si + offset_of!(StartInfo, flags) as u64).unwrap(), 0x303);
        let mod_start = g.read_u64(si + offset_of!(StartInfo, mod_start) as u64).unwrap();
        let mut m = [0u8; 7];
        g.copy_from_guest(mod_start, &mut m).unwrap();
        assert_eq!(&m, b"module!");
        // The kernel is where its ELF said, and the hypercall page is filled.
        assert_eq!(g.read_u32(0x100000).unwrap(), 0xf4f4f4f4);
        let mut hc = [0u8; 8];
        g.copy_from_guest(0x101000 + 32 * 18, &mut hc).unwrap();
        assert_eq!(hc, [0x51, 0x41, 0x53, 0xb8, 18, 0, 0, 0]);
        // The P2M list names the frames the guest really has.
        let mfn_list = g.read_u64(si + offset_of!(StartInfo, mfn_list) as u64).unwrap();
        for pfn in [0u64, 1, 2047] {
            assert_eq!(g.read_u64(mfn_list + 8 * pfn).unwrap(), d.p2m[pfn as usize].0);
        }
        assert_eq!(v.regs.cs, 0xe033);
        assert_eq!(v.regs.rsp, built.layout.vstack_end);
    }

    #[test]
    fn initial_page_tables_are_read_only_and_typed() {
        let (p, mut ft) = setup(4096);
        let k = kernel();
        let built = build_pv_domain(&p, &mut ft, &request(&k, None, 2048)).unwrap();
        let l = built.layout;
        let d = &built.domain;
        let g = GuestMem::new(&p, d.vcpus[0].cr3, ft.len());
        assert!(g.read_u64(l.vpt_start).is_ok());
        assert_eq!(g.write_u64(l.vpt_start, 0), Err(hypercall_abi::errno::Errno::EFAULT));
        assert!(g.write_u64(l.vstack_start, 0).is_ok());
        let l4 = ft.get(d.vcpus[0].cr3).unwrap();
        assert_eq!(l4.ty, PageType::L4);
        assert!(l4.pinned);
        for pfn in l.pfn_of(l.vpt_start)..l.pfn_of(l.vpt_end) {
            assert!(ft.get(d.p2m[pfn as usize]).unwrap().ty.is_page_table(), "pfn {pfn}");
        }
        let stack = ft.get(d.p2m[l.pfn_of(l.vstack_start) as usize]).unwrap();
        assert_eq!((stack.ty, stack.type_count), (PageType::Writable, 1));
    }

    #[test]
    fn hypervisor_slots_are_the_hypervisors() {
        let (p, mut ft) = setup(4096);
        let k = kernel();
        let built = build_pv_domain(&p, &mut ft, &request(&k, None, 2048)).unwrap();
        let l4 = built.domain.vcpus[0].cr3;
        for i in 0..16 {
            assert_eq!(p.read_u64(l4, 256 + i), p.hypervisor_slots[i]);
        }
    }

    #[test]
    fn too_little_memory_is_refused_and_nothing_leaks() {
        let (p, mut ft) = setup(4096);
        let free = ft.free_count();
        let k = kernel();
        let err = build_pv_domain(&p, &mut ft, &request(&k, None, 64)).err().unwrap();
        assert!(matches!(err, BuildError::TooSmall { .. }), "{err:?}");
        let err = build_pv_domain(&p, &mut ft, &request(&k, None, 8192)).err().unwrap();
        assert_eq!(err, BuildError::OutOfMemory);
        assert_eq!(ft.free_count(), free);
    }

    #[test]
    fn kernels_reaching_into_the_hypervisor_are_refused() {
        let (p, mut ft) = setup(4096);
        let k = build(
            0xffff_8000_0010_0000,
            &[0; 16],
            0x1000,
            0xffff_8000_0010_0000,
            &[Note { ty: XEN_ELFNOTE_XEN_VERSION, desc: b"xen-3.0\0" }, Note { ty: XEN_ELFNOTE_LOADER, desc: b"generic\0" }],
        );
        let err = build_pv_domain(&p, &mut ft, &request(&k, None, 2048)).err().unwrap();
        assert!(matches!(err, BuildError::BadImage(_)), "{err:?}");
    }
}
