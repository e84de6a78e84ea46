//! Debian's Linux (scripts/fetch-linux.sh puts it in .cache/linux/) unpacks
//! to an ELF with Xen notes. Needs the download: run by the QEMU tests'
//! preparation; here it fails loudly without it rather than pass.

#[test]
#[ignore = "needs scripts/fetch-linux.sh"]
fn debians_linux_bzimage_unpacks_to_a_pv_kernel() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache/linux/vmlinuz");
    let img = std::fs::read(path).expect("run scripts/fetch-linux.sh first");
    let p = pv_image::bzimage::payload(&img).unwrap();
    assert_eq!(p.compression, pv_image::Compression::Xz);
    let mut out = vec![0u8; p.unpacked_len];
    let mut scratch = vec![0u8; p.scratch_len().unwrap()];
    let t = std::time::Instant::now();
    let n = p.unpack(&mut out, &mut scratch).unwrap();
    eprintln!("unpacked {} MiB (dict {} MiB) in {:?}", n >> 20, scratch.len() >> 20, t.elapsed());
    let k = pv_image::parse(&out).unwrap();
    eprintln!("entry {:#x} notes {:?}", k.entry, k.notes);
    assert!(k.notes.entry.is_some() && k.notes.features.as_deref().is_some_and(|f| f.contains("writable_page_tables")));
}
