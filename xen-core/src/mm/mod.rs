//! Machine memory: frame numbers, page-table entries, the frame table.

pub mod frame_table;
pub mod grant_pte;
pub mod machine;
pub mod pte;
pub mod shared;
pub mod types;
pub mod validate;

pub use frame_table::{FrameTable, Owner, PageType};
pub use machine::MachineMemory;
pub use shared::SharedPage;
pub use types::{Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};
