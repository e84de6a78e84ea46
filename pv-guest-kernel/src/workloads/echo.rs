//! `workload=echo`: reads its console's input (the `in` half of the PV
//! console ring, filled by Dom0's `xl console`) and answers each line with
//! `echo: <line>`; the line `quit` ends it.

use heapless::Vec;
use pv_rt::println;
use pv_rt::xencons::{console_port, console_read};

use super::grant::Env;

pub fn run(_cmd: &str) {
    let Ok(env) = Env::new() else { return };
    let Some(port) = console_port() else {
        println!("echo: no console ring (Dom0 reads Xen's console instead)");
        return;
    };
    env.mask(port);
    println!("echo: type a line ('quit' ends)");
    let mut line: Vec<u8, 128> = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = console_read(&mut buf);
        for &c in &buf[..n] {
            match c {
                b'\r' | b'\n' => {
                    let text = core::str::from_utf8(&line).unwrap_or("?");
                    if text == "quit" {
                        println!("echo: bye");
                        return;
                    }
                    println!("echo: {}", text);
                    line.clear();
                }
                _ => {
                    let _ = line.push(c);
                }
            }
        }
        if n == 0 {
            env.take_pending(port);
            let _ = env.poll(&[port], Some(env.now_ns() + 1_000_000_000));
        }
    }
}
