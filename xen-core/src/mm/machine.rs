//! The platform's view of machine memory, one frame at a time.

use super::types::Mfn;

/// Byte-level access to machine frames. The core calls it only with frames the
/// frame table knows (`mfn < frame_table.len()`) and with `offset + len <=
/// 4096`; implementations may treat anything else as a hypervisor bug.
///
/// On the machine this is the direct map; on the host a vector of pages, which
/// lets every piece of the core run in unit and property tests.
pub trait MachineMemory {
    fn read(&self, mfn: Mfn, offset: usize, buf: &mut [u8]);
    fn write(&self, mfn: Mfn, offset: usize, data: &[u8]);
    fn fill(&self, mfn: Mfn, offset: usize, len: usize, byte: u8);

    fn read_u64(&self, mfn: Mfn, index: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read(mfn, index * 8, &mut b);
        u64::from_le_bytes(b)
    }

    fn write_u64(&self, mfn: Mfn, index: usize, value: u64) {
        self.write(mfn, index * 8, &value.to_le_bytes());
    }

    fn zero_frame(&self, mfn: Mfn) {
        self.fill(mfn, 0, 4096, 0);
    }

    /// Copy `len` bytes between frames (no bounce buffer on the machine).
    fn copy(&self, dst: Mfn, dst_off: usize, src: Mfn, src_off: usize, len: usize) {
        let mut buf = [0u8; 4096];
        self.read(src, src_off, &mut buf[..len]);
        self.write(dst, dst_off, &buf[..len]);
    }
}
