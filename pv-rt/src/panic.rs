//! A kernel panic is a guest crash: say why, then `SHUTDOWN_crash`, which the
//! hypervisor logs and acts on (Xen's `on_crash`).

use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // The report goes to the console, whoever was being answered.
    crate::console::set_sink(None);
    match info.location() {
        Some(loc) => crate::println!("panic at {}:{}: {}", loc.file(), loc.line(), info.message()),
        None => crate::println!("panic: {}", info.message()),
    }
    crate::crash()
}
