//! The second serial port (COM2, a 16550 UART at `0x2f8`), polled: the
//! host channel's wire (`host_channel`). Dom0 reaches it with `in`/`out`,
//! which the hypervisor emulates for Dom0 on every port it does not drive
//! itself (xen-core and Xen 4.17 alike: both keep only COM1). No interrupt
//! is used: the toolstack looks at the line status when it wakes.
//!
//! QEMU takes bytes from its chardev only while the receive FIFO has room,
//! so nothing is lost while Dom0 is not looking; it sends ours at once.

use x86_64::instructions::port::Port;

const COM2: u16 = 0x2f8;
const RBR_THR: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const SCR: u16 = 7;
const LSR_DR: u8 = 0x01;
const LSR_THRE: u8 = 0x20;
/// How many line-status reads a byte may wait for room to be sent: a host
/// that stopped reading must not stop Dom0 (its output is dropped).
const TX_PATIENCE: u32 = 100_000;

pub struct Uart {
    base: u16,
    /// The far end stopped taking bytes: drop output until it takes again.
    stalled: bool,
}

fn inb(port: u16) -> u8 {
    // SAFETY: COM2's registers; reading them has no effect on memory.
    unsafe { Port::<u8>::new(port).read() }
}

fn outb(port: u16, v: u8) {
    // SAFETY: as for `inb`.
    unsafe { Port::<u8>::new(port).write(v) }
}

impl Uart {
    /// COM2 if a UART answers there (its scratch register keeps a value;
    /// an absent port reads all-ones), set to 8N1 with FIFOs, no interrupts.
    /// `set_iopl` must have let our `in`/`out` through.
    pub fn probe() -> Option<Uart> {
        let base = COM2;
        for v in [0x5a, 0xa5] {
            outb(base + SCR, v);
            if inb(base + SCR) != v {
                return None;
            }
        }
        outb(base + IER, 0);
        // 115200 baud (divisor 1): QEMU ignores it, real hardware would not.
        outb(base + LCR, 0x80);
        outb(base + RBR_THR, 1);
        outb(base + IER, 0);
        outb(base + LCR, 0x03);
        // FIFOs on, not cleared: what the host sent before we looked stays.
        // Trigger level 14: QEMU takes from its chardev as many bytes as
        // the level leaves room for, so at level 1 it passes one byte per
        // main-loop turn; at 14, up to 14.
        outb(base + FCR, 0xc1);
        // DTR and RTS: some hosts wait for them.
        outb(base + MCR, 0x03);
        Some(Uart { base, stalled: false })
    }

    /// One received byte, if any.
    pub fn read(&mut self) -> Option<u8> {
        if inb(self.base + LSR) & LSR_DR == 0 {
            return None;
        }
        Some(inb(self.base + RBR_THR))
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let mut waited = 0;
            while inb(self.base + LSR) & LSR_THRE == 0 {
                waited += 1;
                if self.stalled || waited == TX_PATIENCE {
                    self.stalled = true;
                    return;
                }
            }
            self.stalled = false;
            outb(self.base + RBR_THR, b);
        }
    }
}
