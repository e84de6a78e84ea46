//! The regression corpus: each finding a small step sequence, postcard
//! encoded, in `xen-fuzz/corpus/` (replayed by the tests of this crate).
//! Findings the core does not survive yet live in `corpus/open/`, replayed
//! by an ignored test until their fix lands; then the file moves up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::step::Step;

/// One corpus entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What it is, in a few words (also the file name).
    pub name: String,
    /// The oracle's message when it was found.
    pub finding: String,
    /// How it was found (seed, steps, time).
    pub found_by: String,
    pub steps: Vec<Step>,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }

    pub fn load(path: &Path) -> Result<Record, String> {
        let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Record::decode(&b).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.encode())
    }
}

/// The `.postcard` files directly in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "postcard")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The committed corpus.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}
