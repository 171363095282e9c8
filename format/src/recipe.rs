//! What a file to be encoded is made of: runs of new bytes from the source and
//! blocks reused from the previous version. A full upload is one `New` run; the
//! diff search (`diff.rs`) produces recipes with `Old` blocks, and the encoder
//! turns either into an encoded file.

use crate::index::BlockClear;

/// One step of a recipe, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `len` bytes of the source starting at `offset`, split into blocks by the
    /// rules of `formats.md` §2.5 and stored as chunks.
    New { offset: u64, len: u64 },
    /// Block `index` of the old file, stored as a reference entry whose checksums
    /// (`clear`) are re-encrypted for their new position.
    Old { index: u64, clear: BlockClear },
}

/// The blocks of a file to encode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipe {
    /// Object ID of the old file the `Old` blocks come from; 0 when there are none.
    pub other_file_id: i64,
    pub instructions: Vec<Instruction>,
}

impl Recipe {
    /// A full upload of `len` source bytes.
    pub fn whole(len: u64) -> Recipe {
        Recipe {
            other_file_id: 0,
            instructions: if len == 0 {
                Vec::new()
            } else {
                vec![Instruction::New { offset: 0, len }]
            },
        }
    }

    /// True if the recipe reuses any old block.
    pub fn has_references(&self) -> bool {
        self.instructions
            .iter()
            .any(|i| matches!(i, Instruction::Old { .. }))
    }
}
