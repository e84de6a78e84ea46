//! The documents and scripts tell the truth about the repository: every
//! relative link in README.md, docs/*.md and dom0/README.md leads to a file
//! (and, with `#anchor`, to a heading) that exists; every script prints its
//! help for `--help` without doing any work; docs/architecture.md lists every
//! method of the `Platform` trait. No QEMU is involved.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::repo_root;

/// The Markdown files a reader is pointed at.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut docs = vec![root.join("README.md"), root.join("dom0/README.md")];
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    docs
}

/// The text outside fenced code blocks and inline code spans, line by line
/// (a `[x](y)` inside code is an example, not a link). A code span may run
/// over a line break; a blank line ends it.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            in_code = false;
            continue;
        }
        if fenced {
            continue;
        }
        if line.trim().is_empty() {
            in_code = false;
        }
        let mut kept = String::new();
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                kept.push(c);
            }
        }
        out.push((i + 1, kept));
    }
    out
}

/// Targets of inline links `[text](target)` and `![alt](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        // `[x](<path with spaces>)` and `[x](path "title")`.
        let raw = after[..end].trim();
        let target = match raw.strip_prefix('<') {
            Some(r) => r.split('>').next().unwrap_or(""),
            None => raw.split_whitespace().next().unwrap_or(""),
        };
        targets.push(target.to_string());
        rest = &after[end..];
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and
/// `_` dropped, spaces to `-`; repeated headings get `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else { continue };
        if fenced {
            continue;
        }
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base: String = heading
            .trim()
            .chars()
            .filter_map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    Some(c.to_lowercase().next().unwrap_or(c))
                } else if c == ' ' {
                    Some('-')
                } else {
                    None
                }
            })
            .collect();
        let mut slug = base.clone();
        let mut n = 1;
        while seen.contains(&slug) {
            slug = format!("{base}-{n}");
            n += 1;
        }
        seen.insert(slug);
    }
    seen
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo_root()).unwrap_or(p).display().to_string()
}

#[test]
fn every_relative_link_in_the_documents_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("read document");
        for (line_no, line) in prose_lines(&text) {
            for target in link_targets(&line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() { doc.clone() } else { doc.parent().expect("parent").join(path) };
                let where_ = format!("{}:{line_no}: ({target})", rel(&doc));
                if !file.exists() {
                    broken.push(format!("{where_}: no {}", rel(&file)));
                    continue;
                }
                if let Some(anchor) = anchor {
                    if file.extension().is_some_and(|e| e == "md") {
                        let text = std::fs::read_to_string(&file).expect("read link target");
                        if !anchors(&text).contains(anchor) {
                            broken.push(format!("{where_}: no heading #{anchor} in {}", rel(&file)));
                        }
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 5, "only {checked} links found: is the link parser broken?");
}

/// The checker itself: it must see links, skip code, and know GitHub's
/// anchors, or the test above could pass on anything.
#[test]
fn the_link_checker_finds_links_and_anchors() {
    let text = "See [a](docs/a.md#two-words) and ![i](<x y.png>).\n`[no](code)` `a\n[no](span)` [b](c.md)\n```\n[no](fence)\n```\n";
    let found: Vec<String> = prose_lines(text).iter().flat_map(|(_, l)| link_targets(l)).collect();
    assert_eq!(found, ["docs/a.md#two-words", "x y.png", "c.md"]);
    let a = anchors("# Two Words\n## `code` and (parens)!\n# Two words\n```\n# not a heading\n```\n");
    let want: BTreeSet<String> = ["two-words", "code-and-parens", "two-words-1"].iter().map(|s| s.to_string()).collect();
    assert_eq!(a, want);
}

/// Every shell script of the repository (outside target/ and hidden folders).
fn scripts() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if name.ends_with(".sh") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root(), &mut out);
    out.sort();
    out
}

/// `script --help` with every tool that does work (cargo, QEMU, apt, dpkg,
/// sudo, cpio) replaced by a stand-in that leaves a mark; and in a scratch
/// copy of nothing: the script's own directory is used, so a script that
/// writes files shows up as a new file there.
fn run_help(script: &Path) -> Result<String, String> {
    let shims = std::env::temp_dir().join(format!("xen-core-help-shims-{}", std::process::id()));
    let marks = shims.join("marks");
    std::fs::create_dir_all(&marks).map_err(|e| e.to_string())?;
    for tool in ["cargo", "qemu-system-x86_64", "apt-get", "apt", "dpkg", "sudo", "cpio", "make", "cc", "gdb"] {
        let shim = shims.join(tool);
        std::fs::write(&shim, format!("#!/bin/sh\necho \"$0 $*\" >> '{}/{tool}'\nexit 1\n", marks.display()))
            .map_err(|e| e.to_string())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        }
    }
    let path = format!("{}:{}", shims.display(), std::env::var("PATH").unwrap_or_default());
    let before = listing(&repo_root());
    let start = Instant::now();
    let mut child = Command::new("bash")
        .arg(script)
        .arg("--help")
        .current_dir(repo_root())
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("still running after 20 s: it is doing work".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let used: Vec<String> = std::fs::read_dir(&marks)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default().trim().to_string())
        .collect();
    let _ = std::fs::remove_dir_all(&shims);
    let after = listing(&repo_root());
    let created: Vec<&String> = after.difference(&before).collect();
    if !used.is_empty() {
        return Err(format!("ran {used:?}"));
    }
    if !created.is_empty() {
        return Err(format!("created {created:?}"));
    }
    if !status.success() {
        return Err(format!("exited {status}\n{text}"));
    }
    Ok(text)
}

/// Names in the repository root and in `scripts/` and `dom0/` (where a
/// script would drop a file named after an argument).
fn listing(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in [root.to_path_buf(), root.join("scripts"), root.join("dom0")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            names.insert(rel(&e.path()));
        }
    }
    names
}

#[test]
fn every_script_prints_help_for_help_without_doing_work() {
    let scripts = scripts();
    for expected in ["scripts/run.sh", "scripts/test.sh", "scripts/build.sh", "scripts/bench.sh", "dom0/mkinitrd.sh"] {
        assert!(scripts.iter().any(|s| rel(s) == expected), "{expected} not found among {scripts:?}");
    }
    let mut bad = Vec::new();
    for script in &scripts {
        let name = rel(script);
        match run_help(script) {
            Ok(text) => {
                // "Usage: scripts/run.sh ..." or "usage: run.sh ...": the line
                // names the script.
                let file = script.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
                let usage = text.lines().any(|l| l.trim_start().to_lowercase().starts_with("usage:") && l.contains(&file));
                if !usage {
                    bad.push(format!("{name} --help: no 'Usage: ...{file} ...' line:\n{text}"));
                }
            }
            Err(e) => bad.push(format!("{name} --help: {e}")),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

/// docs/architecture.md describes the machine interface: every method of
/// `Platform` (xen-core/src/platform.rs) is named there.
#[test]
fn the_architecture_document_names_every_platform_method() {
    let src = std::fs::read_to_string(repo_root().join("xen-core/src/platform.rs")).expect("platform.rs");
    let doc = std::fs::read_to_string(repo_root().join("docs/architecture.md")).expect("architecture.md");
    let methods: Vec<&str> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("fn "))
        .filter_map(|l| l.split('(').next())
        .collect();
    assert!(methods.len() >= 10, "parsed only {methods:?} from platform.rs");
    let missing: Vec<&&str> = methods.iter().filter(|m| !doc.contains(&format!("`{m}`"))).collect();
    assert!(missing.is_empty(), "docs/architecture.md does not name Platform::{missing:?}");
}
