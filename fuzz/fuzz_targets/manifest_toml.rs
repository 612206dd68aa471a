//! `plugin.toml`: parsing and validation never panic, every error is located inside the text,
//! and a valid manifest's canonical form validates and means the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sigil_fuzz::manifest::check(data, sigil_manifest::Format::Toml);
});
