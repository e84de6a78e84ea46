//! `workload=balloon`: a guest that follows `xl mem-set` with pv-rt's
//! balloon driver, printing each target it sees and the memory it then
//! holds (`balloon: target 8192 KiB: now 8192 KiB`). Runs until destroyed.

use pv_rt::println;
use pv_rt::xenbus::balloon;
use pv_rt::xenbus::Xenbus;
use pv_rt::start_info;

use super::grant::Env;

pub fn run(_cmd: &str) {
    let Ok(mut env) = Env::new() else { return };
    let Some(mut xs) = Xenbus::new(start_info()) else {
        println!("balloon: start_info names no store ring");
        return;
    };
    if let Err(e) = balloon::listen(&mut xs) {
        println!("balloon: cannot watch memory/target: {}", e.name());
        return;
    }
    println!("balloon: watching memory/target; {} KiB", balloon::current_pages().unwrap_or(0) * 4);
    let mut last = None;
    loop {
        match balloon::target_kib(&mut xs) {
            Ok(Some(kib)) if last != Some(kib) => {
                last = Some(kib);
                match balloon::balloon_to(&mut env.mm, kib / 4) {
                    Ok(pages) => println!("balloon: target {} KiB: now {} KiB", kib, pages * 4),
                    Err(e) => println!("balloon: target {} KiB: {}", kib, e.name()),
                }
            }
            Ok(_) => {}
            Err(e) => {
                println!("balloon: store error {}", e.name());
                return;
            }
        }
        balloon::wait(&mut xs, pv_rt::time::system_time() + 1_000_000_000);
    }
}
