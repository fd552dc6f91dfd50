//! The method's nodes (see README.md), one module per family: fitting (SingleGaussFit, GMMFit), editing
//! (AttributeEdit), evaluation (EditScore, CompareEdits, MergeScores) and files (SaveFit, LoadMixture). The math lives apart
//! from the node code, in [`gauss`], [`full`], [`fit`], [`edit`], [`score`], [`robust`] and [`store`].

// `!(x > limit)` is how these checks also refuse NaN; the rewrite clippy asks for would let NaN through.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod edit;
pub mod fit;
pub mod full;
pub mod gauss;
pub mod robust;
pub mod score;
pub mod store;

mod nodes {
    pub mod editing;
    pub mod evaluation;
    pub mod files;
    pub mod fitting;
}

use nodes::{editing::*, evaluation::*, files::*, fitting::*};

subspace_sdk::export_plugin!(
    SingleGaussFit,
    GmmFit,
    AttributeEdit,
    SaveFit,
    LoadMixture,
    EditScore,
    CompareEdits,
    MergeScores
);
