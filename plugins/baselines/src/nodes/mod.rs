//! The plugin's nodes, by family: fitting directions, editing along them, and file interop.

pub mod editing;
pub mod fitting;
pub mod interop;

/// Doc of every `directions` output.
const DIRECTIONS_DOC: &str = "one unit normal per class of the labels' schema, with offsets";
