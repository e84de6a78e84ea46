//! COM1, the hypervisor's console (Xen's `console=com1`): 115200 8N1, polled.
//! Ring 0 runs with interrupts off, so both directions poll the line status.

use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;

pub fn init() {
    let regs = |off: u16| Port::<u8>::new(COM1 + off);
    // SAFETY: COM1 is the standard PC UART; programming it has no effect on memory.
    unsafe {
        regs(1).write(0x00); // no UART interrupts
        regs(3).write(0x80); // DLAB on: divisor follows
        regs(0).write(0x01); // divisor 1: 115200 baud
        regs(1).write(0x00);
        regs(3).write(0x03); // 8N1, DLAB off
        regs(2).write(0xc7); // FIFOs on, cleared, 14-byte threshold
        regs(4).write(0x03); // DTR, RTS
    }
}

fn lsr() -> u8 {
    // SAFETY: reading the UART's line status register has no side effects on memory.
    unsafe { Port::<u8>::new(COM1 + 5).read() }
}

pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

fn put(b: u8) {
    while lsr() & LSR_THR_EMPTY == 0 {
        core::hint::spin_loop();
    }
    // SAFETY: writing the UART's transmit register only sends a byte.
    unsafe { Port::<u8>::new(COM1).write(b) }
}

/// Bytes waiting in the receive FIFO, without blocking.
pub fn read_bytes(buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() && lsr() & LSR_DATA_READY != 0 {
        // SAFETY: reading the UART's receive register only consumes a byte.
        buf[n] = unsafe { Port::<u8>::new(COM1).read() };
        n += 1;
    }
    n
}

pub fn input_ready() -> bool {
    lsr() & LSR_DATA_READY != 0
}
