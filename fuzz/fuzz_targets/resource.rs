//! RFC 8707 resource indicators: when a requested `resource` names a declared one. The
//! relation must be reflexive and symmetric (a token's audience is the declared spelling).
#![no_main]
use inbound::protocol::resource::same_resource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let (a, b) = input.split_once('\n').unwrap_or((input, input));
    assert!(same_resource(a, a));
    assert_eq!(same_resource(a, b), same_resource(b, a), "asymmetric: {a:?} / {b:?}");
});
