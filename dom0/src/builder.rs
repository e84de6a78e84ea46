//! The PV domain builder: libxc's steps for a 64-bit domU, done from Dom0
//! with hypercalls (`xg_dom_core.c`, `xg_dom_x86.c`, `xg_dom_boot.c`):
//!
//! 1. `XEN_DOMCTL_createdomain` (PV: no flags), `XEN_DOMCTL_max_vcpus`
//!    (which creates the vCPUs in Xen 4.17), `XEN_DOMCTL_max_mem`;
//! 2. `XENMEM_populate_physmap` for the new domain: the pfn list comes
//!    back as MFNs, which is the domain's P2M;
//! 3. every page of the initial mapping written through a one-page window
//!    onto the domain's frame (`update_va_mapping_otherdomain`): kernel
//!    segments, the P2M list, start_info (naming the store's and the
//!    console's pages and ports), the xenstore and console pages (zeroed),
//!    the bootstrap page tables, the boot stack;
//! 4. the window unmapped (a frame with a writable mapping cannot become a
//!    page table), then `MMUEXT_PIN_L4_TABLE` on the domain's behalf, which
//!    validates and types the whole tree;
//! 5. the hypercall page (`XEN_DOMCTL_hypercall_init`), every vCPU's events
//!    masked in shared_info, vCPU 0's context (`XEN_DOMCTL_setvcpucontext`).
//!
//! The domain is left paused; the caller connects its console and unpauses
//! it. On any failure the half-built domain is destroyed.

use core::fmt;
use core::ptr;

use hypercall_abi::arch::{xen_pfn_to_cr3, VcpuGuestContext, FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_in_kernel, VGCF_online};
use hypercall_abi::domctl::{XEN_SYSCTL_PHYSCAP_gnttab_v2, XenSysctlPhysinfo};
use hypercall_abi::errno::Errno;
use hypercall_abi::hypercall_page;
use hypercall_abi::start_info::{StartInfo, StartInfoConsole, START_INFO_MAGIC};
use hypercall_abi::{DomId, EvtchnPort};

use crate::config::DomainConfig;
use crate::kernel::{self, Kernel, KernelError};
use crate::hv;
use crate::layout::{Layout, LayoutError, PAGE_SIZE};

/// The largest guest this toolstack builds: its P2M lives in Dom0's .bss.
pub const MAX_GUEST_PAGES: usize = 128 * 1024;
/// libxl's `LIBXL_MAXMEM_CONSTANT`: slack above the configured maximum.
pub(crate) const MAXMEM_SLACK_KB: u64 = 1024;
/// Pages per `populate_physmap` call.
const POPULATE_BATCH: usize = 1024;

/// Scratch memory for one build at a time.
pub struct Scratch {
    pub p2m: [u64; MAX_GUEST_PAGES],
    table: [u64; 512],
}

impl Scratch {
    pub const fn new() -> Self {
        Scratch { p2m: [0; MAX_GUEST_PAGES], table: [0; 512] }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the builder maps one of the new domain's frames at a time; the
/// caller has made its L1 table.
pub struct Window {
    pub va: u64,
}

#[derive(Debug)]
pub enum BuildError {
    Kernel(KernelError),
    /// The kernel's addresses leave no room for the initial mapping.
    BadLayout,
    /// The kernel needs more memory than the configuration gives it.
    TooLittleMemory { needed_mib: u64, memory_mib: u64 },
    /// More than [`MAX_GUEST_PAGES`].
    TooMuchMemory { max_mib: u64 },
    /// The host has not enough free memory.
    HostMemory { free_mib: u64, asked_mib: u64 },
    /// A hypercall failed.
    Hypercall { what: &'static str, err: Errno },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Kernel(e) => write!(f, "{}", e),
            BuildError::BadLayout => write!(f, "bad kernel image: its initial mapping would overflow or reach the hypervisor"),
            BuildError::TooLittleMemory { needed_mib, memory_mib } => write!(
                f,
                "memory={} MiB is too little for this kernel: it needs at least {} MiB",
                memory_mib, needed_mib
            ),
            BuildError::TooMuchMemory { max_mib } => {
                write!(f, "memory is limited to {} MiB per guest by this toolstack", max_mib)
            }
            BuildError::HostMemory { free_mib, asked_mib } => {
                write!(f, "not enough free memory: {} MiB asked, {} MiB free on the host", asked_mib, free_mib)
            }
            BuildError::Hypercall { what, err } => write!(f, "{} failed: {}", what, err),
        }
    }
}

fn hc<T>(what: &'static str, r: Result<T, Errno>) -> Result<T, BuildError> {
    r.map_err(|err| BuildError::Hypercall { what, err })
}

/// What the caller needs to run the new domain.
#[derive(Clone, Copy, Debug)]
pub struct Built {
    pub domid: DomId,
    pub nr_pages: u64,
    pub console_mfn: u64,
    /// The console's port in the guest (remote end for Dom0's bind).
    pub console_port: EvtchnPort,
    /// The store page (zeroed) and the store's port in the guest, for
    /// `XS_INTRODUCE`.
    pub store_mfn: u64,
    pub store_port: EvtchnPort,
    pub layout: Layout,
    pub entry: u64,
}

/// Builds `cfg`'s domain from `image` (an ELF or a bzImage) and its
/// `ramdisk`, with domain id `want` (0: the hypervisor's choice); returns
/// it paused. `heap_free` is what Dom0's heap has free for unpacking.
#[allow(clippy::too_many_arguments)]
pub fn build(
    want: DomId,
    cfg: &DomainConfig,
    image: &[u8],
    ramdisk: Option<&[u8]>,
    heap_free: usize,
    scratch: &mut Scratch,
    window: &Window,
    physinfo: &XenSysctlPhysinfo,
) -> Result<Built, BuildError> {
    let kernel = kernel::load(image, heap_free).map_err(BuildError::Kernel)?;
    let nr_pages = cfg.memory * 256;
    if physinfo.free_pages < nr_pages {
        return Err(BuildError::HostMemory { free_mib: physinfo.free_pages / 256, asked_mib: cfg.memory });
    }
    if nr_pages as usize > MAX_GUEST_PAGES {
        return Err(BuildError::TooMuchMemory { max_mib: MAX_GUEST_PAGES as u64 / 256 });
    }
    let p = &kernel.place;
    let ramdisk_len = ramdisk.map_or(0, |r| r.len() as u64);
    let layout = match Layout::compute(p.virt_base, p.vkern_start, p.vkern_end, ramdisk_len, nr_pages) {
        Ok(l) => l,
        Err(LayoutError::TooLittleMemory { needed_pages }) => {
            return Err(BuildError::TooLittleMemory { needed_mib: needed_pages.div_ceil(256), memory_mib: cfg.memory })
        }
        Err(LayoutError::BadImage) => return Err(BuildError::BadLayout),
    };
    // As xl: the highest grant-table version the host offers.
    let grant_version = if physinfo.capabilities & XEN_SYSCTL_PHYSCAP_gnttab_v2 != 0 { 2 } else { 1 };
    let domid = hc("createdomain", hv::createdomain(want, cfg.vcpus, grant_version))?;
    match construct(cfg, &kernel, ramdisk, &layout, domid, nr_pages, scratch, window) {
        Ok(b) => Ok(b),
        Err(e) => {
            // SAFETY: the window maps one of the dying domain's frames, which
            // nothing holds a reference into.
            let _ = unsafe { hv::unmap(window.va) };
            let _ = hv::destroydomain(domid);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn construct(
    cfg: &DomainConfig,
    kernel: &Kernel,
    ramdisk: Option<&[u8]>,
    l: &Layout,
    domid: DomId,
    nr_pages: u64,
    scratch: &mut Scratch,
    window: &Window,
) -> Result<Built, BuildError> {
    // libxl__build_pre's order: vCPUs, then the memory limit.
    hc("max_vcpus", hv::max_vcpus(domid, cfg.vcpus))?;
    hc("max_mem", hv::max_mem(domid, cfg.maxmem * 1024 + MAXMEM_SLACK_KB))?;

    let p2m = &mut scratch.p2m[..nr_pages as usize];
    for (pfn, e) in p2m.iter_mut().enumerate() {
        *e = pfn as u64;
    }
    let mut done = 0;
    while done < p2m.len() {
        let end = (done + POPULATE_BATCH).min(p2m.len());
        let n = hc("populate_physmap", hv::populate_physmap(domid, &mut p2m[done..end]))?;
        if n != end - done {
            return Err(BuildError::HostMemory {
                free_mib: ((done + n) as u64) / 256,
                asked_mib: cfg.memory,
            });
        }
        done = end;
    }

    let info = hc("getdomaininfo", hv::getdomaininfo(domid))?;
    let console_port = hc("alloc_unbound (console)", hv::alloc_unbound(domid, 0))?;
    let console_mfn = p2m[l.console_pfn as usize];
    // The store's port, as libxl's `alloc_evtchn(xenstore_domid)`: Dom0
    // serves the store, so it is the remote end.
    let store_port = hc("alloc_unbound (xenstore)", hv::alloc_unbound(domid, 0))?;
    let store_mfn = p2m[l.xenstore_pfn as usize];

    let mut si = StartInfo::zeroed();
    si.set_magic(START_INFO_MAGIC);
    si.nr_pages = nr_pages;
    si.shared_info = info.shared_info_frame << 12;
    si.flags = 0;
    si.store_mfn = store_mfn;
    si.store_evtchn = store_port;
    si.console = StartInfoConsole::from_domu(console_mfn, console_port);
    si.pt_base = l.va(l.pt_pfn);
    si.nr_pt_frames = l.nr_pt_pages;
    si.mfn_list = l.va(l.p2m_pfn);
    if ramdisk.is_some() {
        // A virtual address, as libxc gives a kernel whose ramdisk it maps
        // (no SIF_MOD_START_PFN).
        si.mod_start = l.va(l.ramdisk_pfn);
        si.mod_len = l.ramdisk_len;
    }
    si.set_cmd_line(cfg.cmdline.as_bytes());

    // Every page of the initial mapping, in pfn order.
    let hcall_pfn = p_hcall(kernel, l);
    let image: &[u8] = &kernel.elf;
    let virt_offset = kernel.place.virt_offset;
    for pfn in 0..l.pages() {
        let mfn = p2m[pfn as usize];
        // SAFETY: the window is ours alone and nothing holds a reference into
        // it; the frame belongs to the domain we are building.
        hc("mapping the new domain's memory", unsafe { hv::map_foreign(window.va, mfn, domid, true) })?;
        let page = window.va as *mut u8;
        // SAFETY: the window now maps one whole writable page.
        let bytes = unsafe { core::slice::from_raw_parts_mut(page, PAGE_SIZE as usize) };
        bytes.fill(0);
        let va = l.va(pfn);
        for s in &kernel.image.segments {
            let seg_va = s.paddr.wrapping_add(virt_offset);
            let (lo, hi) = (va.max(seg_va), (va + PAGE_SIZE).min(seg_va + s.filesz));
            if lo < hi {
                let src = (s.offset + (lo - seg_va)) as usize;
                bytes[(lo - va) as usize..(hi - va) as usize].copy_from_slice(&image[src..src + (hi - lo) as usize]);
            }
        }
        if let Some(rd) = ramdisk {
            let rd_va = l.va(l.ramdisk_pfn);
            let (lo, hi) = (va.max(rd_va), (va + PAGE_SIZE).min(rd_va + l.ramdisk_len));
            if lo < hi {
                let src = (lo - rd_va) as usize;
                bytes[(lo - va) as usize..(hi - va) as usize].copy_from_slice(&rd[src..src + (hi - lo) as usize]);
            }
        }
        if Some(pfn) == hcall_pfn {
            let page: &mut [u8; 4096] = bytes.try_into().expect("a page");
            hypercall_page::fill(page);
        }
        if (l.p2m_pfn..l.p2m_pfn + l.nr_p2m_pages).contains(&pfn) {
            let first = ((pfn - l.p2m_pfn) * 512) as usize;
            for (i, &m) in p2m.iter().skip(first).take(512).enumerate() {
                bytes[8 * i..8 * i + 8].copy_from_slice(&m.to_le_bytes());
            }
        }
        if pfn == l.start_info_pfn {
            // SAFETY: StartInfo is 1168 bytes of plain integers, within the page.
            unsafe { ptr::write_unaligned(page as *mut StartInfo, si) };
        }
        if l.is_page_table(pfn) {
            l.table(pfn - l.pt_pfn, p2m, &mut scratch.table);
            for (i, e) in scratch.table.iter().enumerate() {
                bytes[8 * i..8 * i + 8].copy_from_slice(&e.to_le_bytes());
            }
        }
    }
    // SAFETY: we are done writing through the window.
    hc("unmapping the window", unsafe { hv::unmap(window.va) })?;

    let l4_mfn = p2m[l.pt_pfn as usize];
    hc("pinning the page tables (MMUEXT_PIN_L4_TABLE)", hv::pin_l4(domid, l4_mfn))?;

    if let Some(pfn) = hcall_pfn {
        // libxc's setup_hypercall_page. We wrote the same bytes already, so a
        // hypervisor without the domctl still boots the guest.
        match hv::hypercall_init(domid, p2m[pfn as usize]) {
            Ok(()) | Err(Errno::ENOSYS) => {}
            Err(err) => return Err(BuildError::Hypercall { what: "hypercall_init", err }),
        }
    }

    // libxc's shared_info_x86_64: every vCPU starts with events masked.
    // SAFETY: as above, for the domain's shared_info page.
    hc("mapping shared_info", unsafe { hv::map_foreign(window.va, info.shared_info_frame, domid, true) })?;
    for v in 0..hypercall_abi::arch::XEN_LEGACY_MAX_VCPUS {
        // SAFETY: byte 1 of each 64-byte vcpu_info is evtchn_upcall_mask.
        unsafe { ptr::write_volatile((window.va as *mut u8).add(v * 64 + 1), 1) };
    }
    // SAFETY: done with the page.
    hc("unmapping the window", unsafe { hv::unmap(window.va) })?;

    let mut ctxt = VcpuGuestContext::zeroed();
    ctxt.user_regs.rip = kernel.place.entry;
    ctxt.user_regs.rsp = l.va(l.stack_pfn + 1);
    ctxt.user_regs.rsi = l.va(l.start_info_pfn);
    ctxt.user_regs.rflags = 1 << 9;
    ctxt.user_regs.cs = FLAT_KERNEL_CS;
    ctxt.user_regs.ss = FLAT_KERNEL_SS;
    ctxt.kernel_ss = FLAT_KERNEL_SS as u64;
    ctxt.kernel_sp = ctxt.user_regs.rsp;
    ctxt.flags = VGCF_in_kernel | VGCF_online;
    ctxt.ctrlreg[3] = xen_pfn_to_cr3(l4_mfn);
    hc("setvcpucontext", hv::setvcpucontext(domid, 0, &ctxt))?;

    Ok(Built { domid, nr_pages, console_mfn, console_port, store_mfn, store_port, layout: *l, entry: kernel.place.entry })
}

/// The pfn of the kernel's hypercall page (`place` checked it lies inside
/// the kernel).
fn p_hcall(kernel: &Kernel, l: &Layout) -> Option<u64> {
    kernel.place.hypercall_page.map(|va| l.pfn(va))
}
