//! Signing keys: generated on first start, persisted, published as a JWKS, several by `kid`.
//!
//! Signing uses a parsed key pair cached for the life of the process: re-parsing the PKCS#8
//! document per token (what `jsonwebtoken::encode` does) costs more than the signature.

use std::{collections::HashMap, path::Path};

use crate::private_file::create_private;
use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Errors loading or creating the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("key file {path} is invalid: {reason}")]
    Invalid { path: String, reason: String },
}

/// Why a token does not verify. Deliberately coarse: introspection only says `active: false`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a JWT")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// RFC 9068 §4 / RFC 8725 §3.11: not typed `at+jwt` (e.g. an ID token).
    #[error("not an access token (typ is not at+jwt)")]
    WrongType,
}

/// The persisted key material: `keys.json` in a data directory (`inbound serve`) or the
/// `keys.json` entry of the signing-keys Secret (operator). Every replica signs with the
/// keys of one document, so there is exactly one writer: the process that created the file,
/// or the operator's leader.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyDocument {
    version: u32,
    /// Key of the HMAC used to hash client secrets (base64).
    secret_hash_key: String,
    signing_keys: Vec<StoredKey>,
    /// RS256 keys for ID tokens (OpenID Connect Core §15.1 requires RS256 support).
    #[serde(default)]
    rsa_keys: Vec<StoredKey>,
    /// kid of the ES256 key that signs; the newest key when absent (documents written
    /// before rotation existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_rsa_kid: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    kid: String,
    alg: String,
    /// PKCS#8 v1 document (base64).
    pkcs8: String,
    created_at: i64,
    /// When the key started signing (its creation time when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activated_at: Option<i64>,
    /// When the key stopped signing; published until every token it signed has expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<i64>,
    /// A retired key is published until then: its retirement plus the longest token
    /// lifetime seen since. Only ever extended, so a lifetime lowered later cannot drop a
    /// key whose tokens are still valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    published_until: Option<i64>,
}

/// When keys change. Times in seconds.
#[derive(Clone, Copy, Debug)]
pub struct RotationPolicy {
    /// How long a key signs before its successor takes over.
    pub interval: i64,
    /// How long a successor is published in the JWKS before it signs, so that verifiers
    /// caching the JWKS already know it (must exceed their cache lifetime).
    pub publish_ahead: i64,
    /// How long a retired key stays published: the longest lifetime of a token it signed.
    pub retain: i64,
}

/// When the signing key of one list (ES256 or RS256) was generated and took over, and
/// when its published successor was generated: what the key's age and the next rotation
/// are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySchedule {
    pub alg: &'static str,
    pub created_at: i64,
    pub activated_at: i64,
    pub successor_created_at: Option<i64>,
}

impl KeySchedule {
    fn of(keys: &[StoredKey], active_kid: Option<&str>, alg: &'static str) -> Option<KeySchedule> {
        let active = &keys[active_index(keys, active_kid)?];
        let successor = keys.iter().find(|k| k.retired_at.is_none() && k.created_at > active.created_at);
        Some(KeySchedule {
            alg,
            created_at: active.created_at,
            activated_at: active.activated_at.unwrap_or(active.created_at),
            successor_created_at: successor.map(|k| k.created_at),
        })
    }

    /// When the successor takes over, by the rule [`KeyDocument::rotate`] applies under a
    /// [`RotationPolicy`] with this `interval` and `publish_ahead`: the active key has signed
    /// for `interval` and the successor has been published for `publish_ahead` (one not
    /// generated yet will be, `publish_ahead` before that). How long retired keys are kept
    /// plays no part.
    pub fn next_rotation(&self, interval: i64, publish_ahead: i64) -> i64 {
        let due = self.activated_at + interval;
        self.successor_created_at.map_or(due, |created| due.max(created + publish_ahead))
    }
}

impl KeyDocument {
    /// A fresh document: one ES256 key, one RSA key, a new secret-hashing key.
    pub fn generate(now: i64) -> KeyDocument {
        KeyDocument {
            version: 1,
            secret_hash_key: crate::secrets::random_token(32),
            signing_keys: vec![generate_key(now)],
            rsa_keys: vec![generate_rsa_key(now)],
            active_kid: None,
            active_rsa_kid: None,
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<KeyDocument, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key document serializes")
    }

    /// kids of every published ES256 key (for tests and logs).
    pub fn published_kids(&self) -> Vec<String> {
        self.signing_keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// kids of the keys that sign now (ES256, RS256), for the audit trail.
    pub fn active_kids(&self) -> Vec<String> {
        [&self.active_kid, &self.active_rsa_kid].into_iter().flatten().cloned().collect()
    }

    /// kids of every published key, ES256 and RS256.
    pub fn all_published_kids(&self) -> Vec<String> {
        self.signing_keys.iter().chain(&self.rsa_keys).map(|k| k.kid.clone()).collect()
    }

    /// Applies the schedule at `now`; true when the document changed and must be written.
    ///
    /// Per list: a successor is generated `publish_ahead` before the active key is due,
    /// takes over once due (and published for at least `publish_ahead`), and the retired
    /// key is dropped `retain` after it stopped signing.
    pub fn rotate(&mut self, now: i64, policy: &RotationPolicy) -> bool {
        let es = rotate_list(&mut self.signing_keys, &mut self.active_kid, now, policy, generate_key);
        let rsa = rotate_list(&mut self.rsa_keys, &mut self.active_rsa_kid, now, policy, generate_rsa_key);
        es || rsa
    }
}

/// Index of the signing key of a list: the named one, else the newest.
fn active_index(keys: &[StoredKey], active: Option<&str>) -> Option<usize> {
    active
        .and_then(|kid| keys.iter().position(|k| k.kid == kid))
        .or_else(|| keys.iter().enumerate().max_by_key(|(_, k)| k.created_at).map(|(i, _)| i))
}

fn rotate_list(
    keys: &mut Vec<StoredKey>,
    active_kid: &mut Option<String>,
    now: i64,
    policy: &RotationPolicy,
    generate: fn(i64) -> StoredKey,
) -> bool {
    let mut changed = false;
    let Some(active) = active_index(keys, active_kid.as_deref()) else {
        keys.push(generate(now));
        *active_kid = Some(keys[0].kid.clone());
        return true;
    };
    if active_kid.is_none() {
        // Pin the signer explicitly before a successor (newer) key appears.
        *active_kid = Some(keys[active].kid.clone());
        changed = true;
    }
    let activated_at = keys[active].activated_at.unwrap_or(keys[active].created_at);
    let due = activated_at + policy.interval;
    let successor = keys.iter().position(|k| k.retired_at.is_none() && k.created_at > keys[active].created_at);
    match successor {
        None if now >= due - policy.publish_ahead => {
            keys.push(generate(now));
            changed = true;
        }
        Some(next) if now >= due && now >= keys[next].created_at + policy.publish_ahead => {
            keys[active].retired_at = Some(now);
            keys[next].activated_at = Some(now);
            *active_kid = Some(keys[next].kid.clone());
            changed = true;
        }
        _ => {}
    }
    for key in keys.iter_mut() {
        if let Some(retired) = key.retired_at {
            let until = key.published_until.unwrap_or(0).max(retired + policy.retain);
            if key.published_until != Some(until) {
                key.published_until = Some(until);
                changed = true;
            }
        }
    }
    let before = keys.len();
    keys.retain(|k| k.published_until.is_none_or(|until| now < until));
    changed || keys.len() != before
}

struct SigningKey {
    kid: String,
    key_pair: EcdsaKeyPair,
    x: String,
    y: String,
    /// base64url of `{"alg":"ES256","kid":..,"typ":"at+jwt"}`, precomputed.
    at_jwt_header: String,
}

struct RsaSigningKey {
    kid: String,
    key_pair: aws_lc_rs::rsa::KeyPair,
    n: String,
    e: String,
}

/// The server's signing keys and the secret-hashing key.
pub struct KeySet {
    rsa: Vec<RsaSigningKey>,
    active_rsa: usize,
    keys: Vec<SigningKey>,
    /// Index of the key that signs new tokens.
    active: usize,
    decoding: HashMap<String, DecodingKey>,
    secret_hash_key: Vec<u8>,
    rng: SystemRandom,
    /// The active keys' times (ES256, RS256), for the metrics.
    schedules: Vec<KeySchedule>,
    /// [`KeySet::jwks`] serialised: the same bytes for every request until the next
    /// rotation, which builds a new key set.
    jwks_json: bytes::Bytes,
}

impl KeySet {
    /// Loads `path`, or creates it (mode 0600) with a fresh ES256 key and hashing key.
    pub fn load_or_create(path: &Path, now: i64) -> Result<KeySet, KeyError> {
        let display = path.display().to_string();
        let io = |source| KeyError::Io { path: display.clone(), source };
        let file = match std::fs::read(path) {
            Ok(bytes) => {
                KeyDocument::from_json(&bytes).map_err(|reason| KeyError::Invalid { path: display.clone(), reason })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = KeyDocument::generate(now);
                if create_private(path, &file.to_json()).map_err(io)? {
                    file
                } else {
                    // Another process sharing the data directory created it first: every
                    // replica must sign with the same keys, so use theirs.
                    let bytes = std::fs::read(path).map_err(io)?;
                    KeyDocument::from_json(&bytes)
                        .map_err(|reason| KeyError::Invalid { path: display.clone(), reason })?
                }
            }
            Err(e) => return Err(io(e)),
        };
        KeySet::from_document(&file).map_err(|reason| KeyError::Invalid { path: display, reason })
    }

    /// Parses every key of a document; the active ones sign, all are published.
    pub fn from_document(file: &KeyDocument) -> Result<KeySet, String> {
        let mut keys = Vec::new();
        for stored in &file.signing_keys {
            if stored.alg != "ES256" {
                return Err(format!("key {}: unsupported alg {}", stored.kid, stored.alg));
            }
            let pkcs8 = STANDARD.decode(&stored.pkcs8).map_err(|e| format!("key {}: {e}", stored.kid))?;
            let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                .map_err(|e| format!("key {}: {e}", stored.kid))?;
            keys.push(SigningKey::new(stored.kid.clone(), key_pair));
        }
        if keys.is_empty() {
            return Err("no signing key".into());
        }
        let secret_hash_key = file.secret_hash_key.clone().into_bytes();
        // Keys other than the active one stay published: a successor so that verifiers
        // learn it before it signs, predecessors so that their tokens still verify.
        let active = active_index(&file.signing_keys, file.active_kid.as_deref()).unwrap_or(0);
        let decoding = keys
            .iter()
            .map(|k| Ok((k.kid.clone(), DecodingKey::from_ec_components(&k.x, &k.y).map_err(|e| e.to_string())?)))
            .collect::<Result<_, String>>()?;
        let rsa = file.rsa_keys.iter().map(RsaSigningKey::from_stored).collect::<Result<Vec<_>, _>>()?;
        let mut decoding: HashMap<String, DecodingKey> = decoding;
        for r in &rsa {
            decoding.insert(r.kid.clone(), DecodingKey::from_rsa_components(&r.n, &r.e).map_err(|e| e.to_string())?);
        }
        let active_rsa = active_index(&file.rsa_keys, file.active_rsa_kid.as_deref()).ok_or("no RSA key")?;
        let schedules = [
            KeySchedule::of(&file.signing_keys, file.active_kid.as_deref(), "ES256"),
            KeySchedule::of(&file.rsa_keys, file.active_rsa_kid.as_deref(), "RS256"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut set = KeySet {
            rsa,
            active_rsa,
            keys,
            active,
            decoding,
            secret_hash_key,
            rng: SystemRandom::new(),
            schedules,
            jwks_json: bytes::Bytes::new(),
        };
        set.jwks_json = serde_json::to_vec(&set.jwks()).map_err(|e| e.to_string())?.into();
        Ok(set)
    }

    /// When the signing keys (ES256, RS256) were generated and took over, and their
    /// successors' generation.
    pub fn schedules(&self) -> &[KeySchedule] {
        &self.schedules
    }

    pub fn secret_hash_key(&self) -> &[u8] {
        &self.secret_hash_key
    }

    pub fn active_kid(&self) -> &str {
        &self.keys[self.active].kid
    }

    /// [`KeySet::jwks`] as served (serialised once).
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
    }

    /// The public JWK Set (RFC 7517) with every published key.
    pub fn jwks(&self) -> serde_json::Value {
        let rsa = self.rsa.iter().map(
            |k| serde_json::json!({ "kty": "RSA", "n": k.n, "e": k.e, "kid": k.kid, "alg": "RS256", "use": "sig" }),
        );
        let keys: Vec<_> = rsa
            .chain(self.keys.iter().map(|k| {
                serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": k.x, "y": k.y,
                    "kid": k.kid, "alg": "ES256", "use": "sig",
                })
            }))
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs `claims` as a JWT with `typ: at+jwt` (RFC 9068 §2.1) under the active key.
    pub fn sign_access_token<T: Serialize>(&self, claims: &T) -> String {
        let key = &self.keys[self.active];
        self.sign_jws(&key.at_jwt_header, claims, |input| {
            key.key_pair.sign(&self.rng, input).expect("ECDSA signing cannot fail").as_ref().to_vec()
        })
    }

    /// Signs an OpenID Connect ID token (`typ: JWT`) with RS256 or ES256.
    pub fn sign_id_token<T: Serialize>(&self, claims: &T, alg: crate::api::IdTokenAlg) -> String {
        match alg {
            crate::api::IdTokenAlg::ES256 => {
                let key = &self.keys[self.active];
                let header = serde_json::json!({ "alg": "ES256", "kid": key.kid, "typ": "JWT" });
                self.sign_jws(&URL_SAFE_NO_PAD.encode(header.to_string()), claims, |input| {
                    key.key_pair.sign(&self.rng, input).expect("ECDSA signing cannot fail").as_ref().to_vec()
                })
            }
            crate::api::IdTokenAlg::RS256 => {
                let rsa = &self.rsa[self.active_rsa];
                let header = serde_json::json!({ "alg": "RS256", "kid": rsa.kid, "typ": "JWT" });
                self.sign_jws(&URL_SAFE_NO_PAD.encode(header.to_string()), claims, |input| {
                    let mut signature = vec![0u8; rsa.key_pair.public_modulus_len()];
                    rsa.key_pair
                        .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &self.rng, input, &mut signature)
                        .expect("RSA signing cannot fail");
                    signature
                })
            }
        }
    }

    /// JWS compact serialization: `header.payload.signature`, each base64url.
    fn sign_jws<T: Serialize>(&self, header_b64: &str, claims: &T, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut jwt = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 400);
        jwt.push_str(header_b64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
        let signature = sign(jwt.as_bytes());
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
        jwt
    }

    /// Verifies an access token this server issued: `typ`, signature, `iss` and `exp` (no
    /// leeway: a token is inactive the second it expires). Audience is the caller's business.
    pub fn verify_access_token<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Result<T, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        // RFC 9068 §4: `at+jwt`, or its full media type; case-insensitive (RFC 7515 §4.1.9).
        let typ = header.typ.as_deref().unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self.decoding.get(&kid).ok_or(VerifyError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| VerifyError::Invalid(e.to_string()))
    }
}

impl KeySet {
    /// Verifies an ID token this server issued, as an `id_token_hint` (OpenID Connect
    /// RP-Initiated Logout §2): `typ`, signature (ES256 or RS256, by its key), `iss`. Expiry
    /// is not checked: the hint names a past sign-in, and is often presented after its ID
    /// token expired.
    pub fn verify_id_token_hint<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Result<T, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err(VerifyError::WrongType);
        }
        if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
            return Err(VerifyError::Invalid("unsupported algorithm".into()));
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self.decoding.get(&kid).ok_or(VerifyError::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| VerifyError::Invalid(e.to_string()))
    }
}

impl SigningKey {
    fn new(kid: String, key_pair: EcdsaKeyPair) -> SigningKey {
        let (x, y) = ec_coordinates(&key_pair);
        let header = serde_json::json!({ "alg": "ES256", "kid": kid, "typ": "at+jwt" });
        let at_jwt_header = URL_SAFE_NO_PAD.encode(header.to_string());
        SigningKey { kid, key_pair, x, y, at_jwt_header }
    }
}

impl RsaSigningKey {
    fn from_stored(stored: &StoredKey) -> Result<RsaSigningKey, String> {
        let der = STANDARD.decode(&stored.pkcs8).map_err(|e| format!("key {}: {e}", stored.kid))?;
        let key_pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).map_err(|e| format!("key {}: {e}", stored.kid))?;
        let components = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(key_pair.public_key());
        Ok(RsaSigningKey {
            kid: stored.kid.clone(),
            n: URL_SAFE_NO_PAD.encode(&components.n),
            e: URL_SAFE_NO_PAD.encode(&components.e),
            key_pair,
        })
    }
}

fn generate_rsa_key(now: i64) -> StoredKey {
    use aws_lc_rs::encoding::AsDer;
    let key_pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key generation");
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key_pair).expect("RSA key encodes");
    let components = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(key_pair.public_key());
    // RFC 7638 thumbprint of {"e","kty","n"}.
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&components.e),
        URL_SAFE_NO_PAD.encode(&components.n)
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    StoredKey {
        kid: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        alg: "RS256".into(),
        pkcs8: STANDARD.encode(der.as_ref()),
        created_at: now,
        activated_at: None,
        retired_at: None,
        published_until: None,
    }
}

/// base64url x and y of an uncompressed P-256 point (`0x04 || X || Y`).
fn ec_coordinates(key_pair: &EcdsaKeyPair) -> (String, String) {
    let point = key_pair.public_key().as_ref();
    debug_assert_eq!(point.len(), 65);
    (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]))
}

fn generate_key(now: i64) -> StoredKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key generation");
    let key_pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("fresh key parses");
    let (x, y) = ec_coordinates(&key_pair);
    StoredKey {
        kid: jwk_thumbprint(&x, &y),
        alg: "ES256".into(),
        pkcs8: STANDARD.encode(pkcs8.as_ref()),
        created_at: now,
        activated_at: None,
        retired_at: None,
        published_until: None,
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): a `kid` that names the key itself.
fn jwk_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let keys = KeySet::load_or_create(&path, 1).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let exp = jiff::Timestamp::now().as_second() + 60;
        let token = keys.sign_access_token(&serde_json::json!({"iss": "https://i", "exp": exp, "sub": "s"}));
        let again = KeySet::load_or_create(&path, 2).unwrap();
        assert_eq!(again.active_kid(), keys.active_kid());
        let claims: serde_json::Value = again.verify_access_token(&token, "https://i").unwrap();
        assert_eq!(claims["sub"], "s");
        assert!(again.verify_access_token::<serde_json::Value>(&token, "https://other").is_err());
        // RFC 8725 §3.11: an ID token signed by the same key is not an access token.
        let id_token = keys.sign_id_token(
            &serde_json::json!({"iss": "https://i", "exp": exp, "sub": "s"}),
            crate::api::IdTokenAlg::ES256,
        );
        assert!(matches!(
            again.verify_access_token::<serde_json::Value>(&id_token, "https://i"),
            Err(VerifyError::WrongType)
        ));
        // Tampering with the payload breaks the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"https://i","exp":{exp},"sub":"admin"}}"#));
        parts[1] = &forged;
        assert!(again.verify_access_token::<serde_json::Value>(&parts.join("."), "https://i").is_err());
    }

    #[test]
    fn rotation_publishes_ahead_then_switches_then_retires() {
        let policy = RotationPolicy { interval: 100, publish_ahead: 10, retain: 30 };
        let mut doc = KeyDocument::generate(0);
        let first = KeySet::from_document(&doc).unwrap().active_kid().to_string();
        assert!(doc.rotate(1, &policy), "pins the active kid");
        assert!(!doc.rotate(50, &policy), "nothing due yet");
        // 10 s before due: a successor is published but does not sign.
        assert!(doc.rotate(90, &policy));
        assert_eq!(doc.published_kids().len(), 2);
        let keys = KeySet::from_document(&doc).unwrap();
        assert_eq!(keys.active_kid(), first);
        let successor = doc.published_kids().into_iter().find(|k| *k != first).unwrap();
        assert!(keys.jwks()["keys"].as_array().unwrap().iter().any(|k| k["kid"] == successor.as_str()));
        assert!(!doc.rotate(95, &policy));
        // Due: the successor signs, the predecessor stays published to verify its tokens.
        assert!(doc.rotate(100, &policy));
        let keys = KeySet::from_document(&doc).unwrap();
        assert_eq!(keys.active_kid(), successor);
        let old_token = KeySet::from_document(&doc).unwrap();
        assert!(old_token.decoding.contains_key(&first));
        // A lower retention later (an app's token lifetime was shortened) does not drop the
        // predecessor early: tokens it signed under the old lifetime may still be valid.
        let shorter = RotationPolicy { retain: 5, ..policy };
        assert!(!doc.rotate(110, &shorter));
        assert!(doc.published_kids().contains(&first));
        // Retired for `retain`: dropped.
        assert!(!doc.rotate(129, &policy));
        assert!(doc.rotate(130, &policy));
        assert_eq!(doc.published_kids(), vec![successor.clone()]);
        // RSA keys follow the same schedule.
        assert_eq!(doc.rsa_keys.len(), 1);
        assert_ne!(doc.active_rsa_kid, None);
        // A successor appears late: it is not activated before being published `publish_ahead`.
        let mut late = doc.clone();
        assert!(late.rotate(300, &policy), "successor generated");
        assert!(!late.rotate(305, &policy), "not published long enough");
        assert!(late.rotate(310, &policy));
        assert_ne!(KeySet::from_document(&late).unwrap().active_kid(), successor);
    }

    #[test]
    fn the_next_rotation_is_when_rotate_switches_keys() {
        let policy = RotationPolicy { interval: 100, publish_ahead: 10, retain: 30 };
        let mut doc = KeyDocument::generate(1000);
        doc.rotate(1001, &policy);
        let es256 = |doc: &KeyDocument| KeySet::from_document(doc).unwrap().schedules()[0];
        let schedule = es256(&doc);
        assert_eq!((schedule.alg, schedule.created_at, schedule.successor_created_at), ("ES256", 1000, None));
        assert_eq!(KeySet::from_document(&doc).unwrap().schedules()[1].alg, "RS256");
        let next = schedule.next_rotation(policy.interval, policy.publish_ahead);
        assert_eq!(next, 1100);
        // The successor is published ahead, on time: the rotation stays where it was.
        assert!(doc.rotate(next - policy.publish_ahead, &policy));
        assert_eq!(es256(&doc).successor_created_at, Some(1090));
        assert_eq!(es256(&doc).next_rotation(policy.interval, policy.publish_ahead), next);
        let signer = KeySet::from_document(&doc).unwrap().active_kid().to_string();
        doc.rotate(next - 1, &policy);
        assert_eq!(KeySet::from_document(&doc).unwrap().active_kid(), signer, "not before");
        assert!(doc.rotate(next, &policy));
        assert_ne!(KeySet::from_document(&doc).unwrap().active_kid(), signer, "at the announced time");
        // The new key: created at 1090, signing since 1100, its successor due 100 s later.
        let schedule = es256(&doc);
        assert_eq!((schedule.created_at, schedule.activated_at, schedule.successor_created_at), (1090, 1100, None));
        assert_eq!(schedule.next_rotation(policy.interval, policy.publish_ahead), 1200);
        // A successor published late (the leader was down) takes over `publish_ahead` later.
        assert!(doc.rotate(1250, &policy));
        assert_eq!(es256(&doc).next_rotation(policy.interval, policy.publish_ahead), 1260);
    }
}
