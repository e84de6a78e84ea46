//! Copying to and from guest virtual memory without trusting the guest.
//!
//! The hypervisor never dereferences a guest address. It walks the guest's
//! page tables in software, through the frame table's bounds, demanding at
//! every level what the guest itself would need from ring 3 (present, user,
//! and for writes, writable). Anything else, including an address in the
//! hypervisor's own slots or a non-canonical one, is `-EFAULT`; so a hostile
//! pointer can neither crash the hypervisor nor make it write a page the guest
//! may only read (such as its own page tables).

use crate::mm::pte::*;
use crate::mm::{MachineMemory, Mfn};
use hypercall_abi::errno::Errno;

/// The last translation made, remembered across calls (one pCPU, one
/// entry): a bounce frame and the `iret` that follows touch the same stack
/// page. It is valid only while no page-table entry anywhere has changed
/// and no frame has been freed since: `FrameTable::pt_gen` counts those
/// events, and an entry of another generation is never used.
#[derive(Clone, Copy, Debug, Default)]
pub struct TranslationCache {
    gen: u64,
    l4: u64,
    vpage: u64,
    writable: bool,
    mfn: u64,
    valid: bool,
}

/// A guest address space: its top-level table and the frames that exist.
pub struct GuestMem<'a, M: MachineMemory> {
    pub mem: &'a M,
    pub l4: Mfn,
    pub nr_frames: u64,
    cache: Option<(&'a core::cell::Cell<TranslationCache>, u64)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl<'a, M: MachineMemory> GuestMem<'a, M> {
    pub fn new(mem: &'a M, l4: Mfn, nr_frames: u64) -> Self {
        GuestMem { mem, l4, nr_frames, cache: None }
    }

    /// Remember translations in `cache`, for page-table generation `gen`.
    pub fn with_cache(mut self, cache: &'a core::cell::Cell<TranslationCache>, gen: u64) -> Self {
        self.cache = Some((cache, gen));
        self
    }

    fn entry(&self, table: Mfn, index: usize, access: Access) -> Result<u64, Errno> {
        if table.0 >= self.nr_frames {
            return Err(Errno::EFAULT);
        }
        let e = self.mem.read_u64(table, index);
        let need = _PAGE_PRESENT | _PAGE_USER | if access == Access::Write { _PAGE_RW } else { 0 };
        if e & need != need || entry_mfn(e) >= self.nr_frames {
            return Err(Errno::EFAULT);
        }
        Ok(e)
    }

    /// The machine frame and offset behind one guest virtual address.
    pub fn translate(&self, va: u64, access: Access) -> Result<(Mfn, usize), Errno> {
        if !is_canonical(va) || in_hypervisor_range(va) {
            return Err(Errno::EFAULT);
        }
        let write = access == Access::Write;
        if let Some((cell, gen)) = self.cache {
            let c = cell.get();
            if c.valid && c.gen == gen && c.l4 == self.l4.0 && c.vpage == va >> 12 && (c.writable || !write) {
                return Ok((Mfn(c.mfn), (va & 0xfff) as usize));
            }
        }
        let (mfn, off) = self.walk(va, access)?;
        if let Some((cell, gen)) = self.cache {
            cell.set(TranslationCache { gen, l4: self.l4.0, vpage: va >> 12, writable: write, mfn: mfn.0, valid: true });
        }
        Ok((mfn, off))
    }

    fn walk(&self, va: u64, access: Access) -> Result<(Mfn, usize), Errno> {
        let l4e = self.entry(self.l4, l4_index(va), access)?;
        let l3e = self.entry(Mfn(entry_mfn(l4e)), l3_index(va), access)?;
        if l3e & _PAGE_PSE != 0 {
            let base = entry_mfn(l3e) & !0x3ffff;
            return self.frame_in_superpage(base, (va >> 12) & 0x3ffff, va);
        }
        let l2e = self.entry(Mfn(entry_mfn(l3e)), l2_index(va), access)?;
        if l2e & _PAGE_PSE != 0 {
            let base = entry_mfn(l2e) & !0x1ff;
            return self.frame_in_superpage(base, (va >> 12) & 0x1ff, va);
        }
        let l1e = self.entry(Mfn(entry_mfn(l2e)), l1_index(va), access)?;
        Ok((Mfn(entry_mfn(l1e)), (va & 0xfff) as usize))
    }

    fn frame_in_superpage(&self, base: u64, index: u64, va: u64) -> Result<(Mfn, usize), Errno> {
        let mfn = base + index;
        if mfn >= self.nr_frames {
            return Err(Errno::EFAULT);
        }
        Ok((Mfn(mfn), (va & 0xfff) as usize))
    }

    /// Walk `[va, va + len)` a page at a time.
    fn for_each_chunk(
        &self,
        va: u64,
        len: usize,
        access: Access,
        mut f: impl FnMut(Mfn, usize, core::ops::Range<usize>),
    ) -> Result<(), Errno> {
        if !guest_range_ok(va, len as u64) {
            return Err(Errno::EFAULT);
        }
        let mut done = 0usize;
        while done < len {
            let cur = va + done as u64;
            let (mfn, off) = self.translate(cur, access)?;
            let n = (4096 - off).min(len - done);
            f(mfn, off, done..done + n);
            done += n;
        }
        Ok(())
    }

    pub fn copy_from_guest(&self, va: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let len = buf.len();
        self.for_each_chunk(va, len, Access::Read, |mfn, off, r| self.mem.read(mfn, off, &mut buf[r]))
    }

    pub fn copy_to_guest(&self, va: u64, data: &[u8]) -> Result<(), Errno> {
        // The common case, one page: one walk.
        if guest_range_ok(va, data.len() as u64) && (va & 0xfff) as usize + data.len() <= 4096 {
            let (mfn, off) = self.translate(va, Access::Write)?;
            self.mem.write(mfn, off, data);
            return Ok(());
        }
        // Check the whole range before writing any of it, so a fault leaves
        // the guest's memory as it was.
        self.for_each_chunk(va, data.len(), Access::Write, |_, _, _| ())?;
        self.for_each_chunk(va, data.len(), Access::Write, |mfn, off, r| self.mem.write(mfn, off, &data[r]))
    }

    pub fn copy_u16(&self, va: u64) -> Result<u16, Errno> {
        let mut b = [0u8; 2];
        self.copy_from_guest(va, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    pub fn read_u32(&self, va: u64) -> Result<u32, Errno> {
        let mut b = [0u8; 4];
        self.copy_from_guest(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_u64(&self, va: u64) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        self.copy_from_guest(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn write_u32(&self, va: u64, v: u32) -> Result<(), Errno> {
        self.copy_to_guest(va, &v.to_le_bytes())
    }

    pub fn write_u64(&self, va: u64, v: u64) -> Result<(), Errno> {
        self.copy_to_guest(va, &v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::HostMemory;

    const PT: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER;

    /// L4=0 L3=1 L2=2 L1=3; va 0x400000.. maps frames 4 (rw) and 5 (ro).
    fn space() -> HostMemory {
        let m = HostMemory::new(8);
        m.write_u64(Mfn(0), 0, (1 << 12) | PT);
        m.write_u64(Mfn(1), 0, (2 << 12) | PT);
        m.write_u64(Mfn(2), 2, (3 << 12) | PT);
        m.write_u64(Mfn(3), 0, (4 << 12) | PT);
        m.write_u64(Mfn(3), 1, (5 << 12) | _PAGE_PRESENT | _PAGE_USER);
        // A supervisor-only mapping: the guest (ring 3) could not use it.
        m.write_u64(Mfn(3), 2, (6 << 12) | _PAGE_PRESENT | _PAGE_RW);
        // Points past the end of memory.
        m.write_u64(Mfn(3), 3, (99 << 12) | PT);
        m
    }

    #[test]
    fn copies_cross_pages_through_the_guest_tables() {
        let m = space();
        let g = GuestMem::new(&m, Mfn(0), 8);
        g.copy_to_guest(0x400ffe, b"ab").unwrap();
        let mut b = [0u8; 2];
        g.copy_from_guest(0x400ffe, &mut b).unwrap();
        assert_eq!(&b, b"ab");
        g.copy_from_guest(0x400ffc, &mut [0u8; 8]).unwrap();
    }

    #[test]
    fn writes_to_read_only_pages_fault_and_change_nothing() {
        let m = space();
        let g = GuestMem::new(&m, Mfn(0), 8);
        assert_eq!(g.copy_to_guest(0x400ff0, &[1u8; 0x20]), Err(Errno::EFAULT));
        assert_eq!(m.read_u64(Mfn(4), 510), 0, "nothing written before the fault");
        assert!(g.read_u64(0x401000).is_ok());
    }

    #[test]
    fn hostile_addresses_fault() {
        let m = space();
        let g = GuestMem::new(&m, Mfn(0), 8);
        for va in [0u64, 0x402000, 0x403000, 0xffff_8300_0000_0000, 0x0000_8000_0000_0000, u64::MAX - 3] {
            assert_eq!(g.read_u32(va), Err(Errno::EFAULT), "va {va:#x}");
        }
        assert_eq!(g.copy_from_guest(0x400000, &mut alloc::vec![0u8; 1 << 20]), Err(Errno::EFAULT));
    }

    #[test]
    fn a_corrupt_top_level_frame_number_faults() {
        let m = space();
        let g = GuestMem::new(&m, Mfn(1234), 8);
        assert_eq!(g.read_u32(0x400000), Err(Errno::EFAULT));
    }
}
