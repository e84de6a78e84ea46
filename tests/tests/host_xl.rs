//! xl from the host: `scripts/run.sh --xl-socket` boots Dom0 with its host
//! channel, `scripts/xl.sh` runs commands from outside (each with its own
//! output and exit status) while keys are typed at the serial console, and
//! malformed frames get an error reply, not a Dom0 crash. On xen-core and
//! on Xen 4.17.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::run_sh::Run;
use tests::{repo_root, Hypervisor};
use xl_proto::{decode, Deframer, Frame, Reply};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `scripts/xl.sh ARGS` from directory `cwd`, on the channel at `sock`.
fn xl(sock: &Path, cwd: &Path, args: &[&str]) -> Out {
    let out = Command::new(repo_root().join("scripts/xl.sh"))
        .args(args)
        .env("XL_SOCKET", sock)
        .current_dir(cwd)
        .output()
        .expect("run scripts/xl.sh");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends `bytes` raw and returns Dom0's first reply frame.
fn raw_reply(sock: &Path, bytes: &[u8]) -> Reply {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(bytes).unwrap();
    let mut de = Deframer::new();
    let mut buf = [0u8; 256];
    loop {
        let n = s.read(&mut buf).expect("a reply from Dom0");
        assert!(n > 0, "the channel closed");
        for &b in &buf[..n] {
            if let Some(Frame::Bytes(mut f)) = de.push(b) {
                return decode::<Reply>(&mut f).expect("a well-formed reply");
            }
        }
    }
}

fn scratch_dir(hv: Hypervisor) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xen-core-host-xl-{}-{}", std::process::id(), hv.name().replace(' ', "-")));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

tests::on_both_hypervisors! {
    fn xl_from_the_host_runs_commands_with_their_output_and_status_while_the_console_stays_interactive(hv) {
        let dir = scratch_dir(hv);
        let sock = dir.join("xl.sock");
        let mut args = vec!["--xl-socket", sock.to_str().unwrap()];
        if hv == Hypervisor::Xen {
            args.push("--xen");
        }
        let mut run = Run::start(&args, true);
        run.wait_for("xl> ");

        // Half a command typed at the console: host commands do not disturb it.
        run.type_keys(b"uptime Dom");
        let list = xl(&sock, &dir, &["list"]);
        assert_eq!((list.code, list.stderr.as_str()), (0, ""), "{}", list.stdout);
        assert!(list.stdout.starts_with("Name "), "{}", list.stdout);
        assert!(list.stdout.contains("\nDomain-0 "), "{}", list.stdout);

        // A config that exists only on the host: its contents are sent; the
        // kernel it names is not a host file, so Dom0's initrd has it.
        std::fs::write(
            dir.join("mine.cfg"),
            "name = \"mine\"\nkernel = \"pv-guest-kernel\"\nmemory = 16\nextra = \"workload=grant-offer peer=0 timeout=0\"\n",
        )
        .unwrap();
        let created = xl(&sock, &dir, &["create", "mine.cfg"]);
        assert_eq!(created.code, 0, "{}{}", created.stdout, created.stderr);
        assert!(created.stdout.starts_with("Parsing config from mine.cfg\n"), "{}", created.stdout);
        assert!(created.stdout.contains("xl: domain mine created: id "), "{}", created.stdout);
        let list = xl(&sock, &dir, &["list"]);
        assert!(list.stdout.lines().any(|l| l.starts_with("mine ") && l.contains(" 16 ")), "{}", list.stdout);

        // Failures: status 1, xl's error line on stderr, nothing on stdout.
        let missing = xl(&sock, &dir, &["create", "nosuch.cfg"]);
        assert_eq!(
            (missing.code, missing.stdout.as_str(), missing.stderr.as_str()),
            (1, "", "xl: config file 'nosuch.cfg' not found in Dom0's initrd (try 'ls')\n")
        );
        let destroyed = xl(&sock, &dir, &["destroy", "mine"]);
        assert_eq!((destroyed.code, destroyed.stdout.as_str(), destroyed.stderr.as_str()), (0, "", ""));
        let again = xl(&sock, &dir, &["destroy", "mine"]);
        assert_eq!((again.code, again.stderr.as_str()), (1, "xl: 'mine' is not a domain name or id\n"));
        let unknown = xl(&sock, &dir, &["frobnicate"]);
        assert_eq!((unknown.code, unknown.stderr.as_str()), (1, "xl: unknown command 'frobnicate' (try 'help')\n"));
        let list = xl(&sock, &dir, &["list"]);
        assert!(!list.stdout.contains("mine"), "{}", list.stdout);

        // Hostile frames: an error reply naming the frame's length, then
        // Dom0 still serves (a lone zero first ends anything half-sent).
        match raw_reply(&sock, b"\0\x05junk\0") {
            Reply::Rejected { frame_len, why } => assert_eq!((frame_len, why.as_str()), (5, "the frame is not a valid message")),
            r => panic!("{r:?}"),
        }
        let mut not_cobs = vec![0u8, 0x30];
        not_cobs.extend([0xffu8; 40]);
        not_cobs.push(0);
        assert!(matches!(raw_reply(&sock, &not_cobs), Reply::Rejected { .. }));
        let list = xl(&sock, &dir, &["list"]);
        assert_eq!(list.code, 0, "Dom0 serves after hostile frames: {}", list.stderr);

        // The console line typed before is intact; the host's output never
        // reached the console.
        run.type_keys(b"ain-0\r");
        run.wait_for("Domain-0 ");
        let text = run.text();
        assert!(!text.contains("Parsing config from mine.cfg"), "{text}");
        assert!(!text.contains("is not a domain name or id"), "{text}");
        assert!(text.contains("[mine] workload: grant-offer"), "the guest's console is Dom0's: {text}");

        // ^C to xl.sh stops the command in Dom0: its output, then 130.
        let sleeper = Command::new(repo_root().join("scripts/xl.sh"))
            .args(["sleep", "600"])
            .env("XL_SOCKET", &sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        tests::run_sh::signal(sleeper.id(), "-INT");
        let out = sleeper.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "xl: sleep: interrupted\n");
        let list = xl(&sock, &dir, &["list"]);
        assert_eq!(list.code, 0, "Dom0 serves after the interrupt: {}", list.stderr);

        // No run: xl.sh says so with status 3.
        let none = xl(&dir.join("nothing.sock"), &dir, &["list"]);
        assert_eq!(none.code, 3, "{}", none.stderr);

        run.type_keys(b"poweroff\r");
        let (st, text) = run.finish();
        assert_eq!(st.code(), Some(0), "{text}");
        assert!(!text.contains("crashed"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
