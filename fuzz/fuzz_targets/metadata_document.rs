//! Client ID Metadata Documents: the client id URL, then a fetched body parsed for it.
#![no_main]
use inbound::cimd::{parse_document, validate_client_id_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (id, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"https://client.example.com/metadata.json"[..], data),
    };
    let Ok(id) = std::str::from_utf8(id) else { return };
    let _ = validate_client_id_url(id, false);
    if let Ok(document) = parse_document(body, id) {
        // draft-ietf-oauth-client-id-metadata-document: the document names itself exactly.
        assert_eq!(document.client_id, id);
    }
});
