//! Kinds of `client_id`.

/// A `client_id` that is a URL names a Client ID Metadata Document
/// (draft-ietf-oauth-client-id-metadata-document §3): the client's metadata is fetched
/// from it instead of being registered.
pub fn is_metadata_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}
