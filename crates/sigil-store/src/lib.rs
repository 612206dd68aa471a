//! Sigil's data directory as files: every file Sigil writes there is private to its user and
//! replaced atomically ([`files`]), and `sigil.toml` has one editor ([`ConfigFile`]), so that
//! front ends changing it at the same time (a daemon and the command line, two API requests)
//! never lose one another's change.

#![forbid(unsafe_code)]

mod config_file;
pub mod files;

pub use config_file::{ConfigFile, ConfigFileError, Edited, Settings};
