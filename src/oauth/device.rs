//! The device authorization grant (RFC 8628): a device without a browser (a CLI, a TV, an
//! agent in a terminal) asks for a device code and a user code (§3.1–§3.2), shows the user
//! code and `/device`, and polls the token endpoint (§3.4–§3.5) while the user signs in on
//! another device, enters the code and decides on the consent page as for any app.
//!
//! State lives in the store (every replica can start, approve or answer a poll); a decision
//! is handed out to one poll only. User codes are guessed at most [`login_guard`]'s budget
//! per source (§5.1), and the device code is a bearer secret only its digest names.
//!
//! [`login_guard`]: super::login_guard

use serde::Serialize;

use super::{
    AuthorizationServer, ErrorCode, OAuthError, authorize::requested_access, params::Params, server::store_error,
    token::Issued,
};
use crate::api::GrantType;
use crate::catalog::{Catalog, Client};
use crate::protocol::paths;
use crate::secrets::{random_token, token_digest};
use crate::store::DecoupledRequest;

/// RFC 8628 §6.1: the user code's characters, uppercase consonants only (no vowels, so no
/// words; no digits, so no 0/O or 1/I confusion): 20 of them.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code: 20^8 ≈ 2.6 × 10^10 codes, 34.6 bits, guessed at most a few
/// times per source before the throttle locks it.
pub const USER_CODE_LENGTH: usize = 8;
/// How long a device code waits for its user by default (`spec.tokens.deviceCodeLifetime`).
pub const DEFAULT_LIFETIME: i64 = 600;
/// The default polling interval (RFC 8628 §3.2: 5 s when the server says nothing).
pub const DEFAULT_INTERVAL: i64 = 5;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Serialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    /// As the user types it: `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A fresh user code (unformatted), from the CSPRNG, uniform over the alphabet.
pub fn new_user_code() -> String {
    let random = aws_lc_rs::rand::SystemRandom::new();
    let mut code = String::with_capacity(USER_CODE_LENGTH);
    while code.len() < USER_CODE_LENGTH {
        let mut byte = [0u8; 1];
        aws_lc_rs::rand::SecureRandom::fill(&random, &mut byte).expect("CSPRNG");
        // Rejection sampling: 240 = 12 × 20, so every character is equally likely.
        if byte[0] < 240 {
            code.push(USER_CODE_ALPHABET[usize::from(byte[0] % 20)] as char);
        }
    }
    code
}

/// `BCDFGHJK` → `BCDF-GHJK` (RFC 8628 §6.1: a separator helps people read it).
pub fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len().min(USER_CODE_LENGTH / 2));
    format!("{a}-{b}")
}

/// What the user typed, as stored: case-insensitive, hyphens and spaces ignored (RFC 8628
/// §6.1); None when it cannot be a user code (then no store lookup is spent on it).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String =
        typed.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == USER_CODE_LENGTH && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// The app's device code lifetime and polling interval, in seconds.
pub fn timing(client: &Client) -> (i64, i64) {
    let seconds = |d: &Option<crate::api::DurationString>, default: i64| {
        d.as_ref().and_then(|d| d.parse().ok()).map(|d: std::time::Duration| d.as_secs() as i64).unwrap_or(default)
    };
    let tokens = &client.spec.tokens;
    (
        seconds(&tokens.device_code_lifetime, DEFAULT_LIFETIME).max(1),
        seconds(&tokens.device_poll_interval, DEFAULT_INTERVAL).max(1),
    )
}

impl AuthorizationServer {
    /// RFC 8628 §3.1: a device asks for a device code. The client authenticates as at the
    /// token endpoint (public clients name themselves); the request is checked like an
    /// authorization request's scopes, resources and tenant.
    pub async fn device_authorization(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<DeviceAuthorizationResponse, OAuthError> {
        let client = self.authenticate_for(catalog, authorization, params, GrantType::DeviceCode, now).await?;
        let access = requested_access(catalog, &client, params)?;
        let (lifetime, interval) = timing(&client);
        let device_code = random_token(32);
        let record = DecoupledRequest {
            client_id: client.client_id.clone(),
            scopes: access.scopes,
            resources: access.resources,
            tenant: access.tenant,
            expires_at: now + lifetime,
            subject: None,
            binding_message: None,
            notification: None,
        };
        // A live user code is unique; a collision (one in billions) draws again.
        for _ in 0..4 {
            let user_code = new_user_code();
            let stored = self
                .store
                .put_decoupled_request(&token_digest(&device_code), &user_code, &record, interval, now)
                .await
                .map_err(store_error)?;
            if stored {
                tracing::info!(client_id = %client.client_id, "device authorization started");
                let verification_uri = format!("{}{}", self.issuer, paths::DEVICE);
                let shown = display_user_code(&user_code);
                return Ok(DeviceAuthorizationResponse {
                    device_code,
                    verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                    verification_uri,
                    user_code: shown,
                    expires_in: lifetime,
                    interval,
                });
            }
        }
        Err(OAuthError::new(ErrorCode::ServerError, "no free user code could be drawn; try again"))
    }

    /// RFC 8628 §3.4–§3.5: the device polls with its device code.
    pub(super) async fn device_code_grant(
        &self,
        catalog: &Catalog,
        authorization: Option<&str>,
        params: &Params,
        now: i64,
    ) -> Result<Issued, OAuthError> {
        let client = self.authenticate_for(catalog, authorization, params, GrantType::DeviceCode, now).await?;
        let digest = token_digest(params.require("device_code")?);
        self.redeem_decoupled(catalog, &client, &digest, "device code", params, now).await
    }

    /// Seconds before `source` may try another user code (after too many wrong ones, RFC
    /// 8628 §5.1); None when it may now.
    pub fn user_code_retry_after(&self, source: &str, now: i64) -> Option<i64> {
        self.failed_user_codes.lock().expect("lock").retry_after(&[user_code_key(source)], now)
    }

    /// The device authorization a user code names, if it is live and undecided. A wrong
    /// code counts against `source`'s budget and is logged.
    pub async fn device_request(
        &self,
        typed: &str,
        source: &str,
        now: i64,
    ) -> Result<Option<(String, DecoupledRequest)>, OAuthError> {
        let found = match normalize_user_code(typed) {
            Some(code) => self.store.decoupled_request(&code, now).await.map_err(store_error)?.map(|r| (code, r)),
            None => None,
        };
        if found.is_none() {
            tracing::warn!(source, "a wrong or expired user code was entered");
            self.failed_user_codes.lock().expect("lock").failed(&[user_code_key(source)], now);
        }
        Ok(found)
    }
}

fn user_code_key(source: &str) -> String {
    format!("user-code:{source}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_alphabet_and_normalise() {
        let code = new_user_code();
        assert_eq!(code.len(), USER_CODE_LENGTH);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)), "{code}");
        assert_ne!(new_user_code(), new_user_code());
        let shown = display_user_code(&code);
        assert_eq!(shown.len(), 9);
        assert_eq!(normalize_user_code(&shown).as_deref(), Some(code.as_str()));
        assert_eq!(normalize_user_code(" wdjb-mjht ").as_deref(), Some("WDJBMJHT"), "case and spacing");
        assert_eq!(normalize_user_code("WDJBMJHT").as_deref(), Some("WDJBMJHT"), "hyphen optional");
        assert_eq!(normalize_user_code("WDJB-MJHA"), None, "a vowel is never in a code");
        assert_eq!(normalize_user_code("WDJB-MJH"), None, "too short");
        assert_eq!(normalize_user_code("WDJB-MJH0"), None);
        // Every character appears: the sampling covers the alphabet.
        let many: String = (0..200).map(|_| new_user_code()).collect();
        assert!(USER_CODE_ALPHABET.iter().all(|c| many.as_bytes().contains(c)));
    }
}
