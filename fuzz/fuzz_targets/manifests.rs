//! Manifest files (`inbound check`, `inbound serve --config`): YAML parsing, then the
//! semantic validation every mode runs.
#![no_main]
use inbound::catalog::{manifest::parse_file, validate::validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (manifests, _) = parse_file("fuzz.yaml", text);
    let _ = validate(&manifests);
});
