//! One test binary for the whole workspace (one link step): each module covers one part.

// Test helpers return tuples of checks; naming each would not make them clearer.
#![allow(clippy::type_complexity)]

mod demo;
mod disk_cache;
mod editor;
mod files;
mod fitting;
mod host;
mod images;
mod method;
mod models;
mod presets;
mod stylegan;
mod third_party;
