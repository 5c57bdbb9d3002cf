//! JWTs someone else signed, presented to us: authorization grants (RFC 7523 §2.1, the
//! JWT bearer grant) and Kubernetes ServiceAccount tokens. Checked as RFC 7523 §3 and
//! RFC 8725 (JWT best current practice) say:
//!
//! - `alg` from an allow-list of asymmetric algorithms (never `none`, never HMAC: a public
//!   key must never become an HMAC secret, RFC 8725 §2.1/§3.1); the key comes from the
//!   issuer's JWKS by `kid`;
//! - `iss` exact (§3 item 1); `aud` names one of the audiences we answer to (§3 item 3:
//!   our issuer or token endpoint, plus what the configuration adds);
//! - `exp` required (§3 item 4) and not too far away: an assertion valid for longer than the
//!   configured maximum is refused, so a leaked one is worth little; `nbf` and `iat` with
//!   60 s of skew (§3 items 5, 6);
//! - `typ`: absent or `JWT` (RFC 7523 defines none); JWTs typed for another purpose
//!   (`at+jwt`, `client-authentication+jwt`, …) are refused, so one kind of token is never
//!   accepted as another (RFC 8725 §3.11).
//!
//! Verifying a signature is pure; finding the key may need the network, which the core
//! does not own: the runtime hands it an [`IssuerKeys`] (JWKS and UserInfo fetches) and,
//! in a cluster, a [`TokenReviewer`] (Kubernetes TokenReview).

use std::sync::Arc;

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Longest assertion read (a JWT larger than this is not one we issue or accept).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: i64 = 60;
/// Algorithms accepted when the configuration names none.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];
/// Whether `alg` is one of the asymmetric algorithms accepted at all
/// ([`crate::protocol::jwk::ASYMMETRIC_ALGORITHMS`]; jsonwebtoken's names are the JWS names).
pub fn is_asymmetric(alg: Algorithm) -> bool {
    crate::protocol::jwk::ASYMMETRIC_ALGORITHMS.contains(&format!("{alg:?}").as_str())
}

/// Where an issuer's public keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// The `jwks_uri` of the issuer's discovery document (`<issuer>/.well-known/openid-configuration`).
    Discovery { issuer: String },
    /// A JWKS URL.
    JwksUri(String),
    /// Keys given in the configuration.
    Inline(Arc<jsonwebtoken::jwk::JwkSet>),
}

/// Whether a fetch may reach private (cluster, loopback) addresses: yes for what the
/// operator configured, no for what any namespace may declare, unless the operator allows it.
pub use crate::remote_keys::Reach;

/// The network behind assertion checks, handed to the core by the runtime.
#[async_trait]
pub trait IssuerKeys: Send + Sync {
    /// The key `kid` published by `source` (None when it publishes no such key). Fetched
    /// keys are cached; an unknown `kid` refetches, rate-limited.
    async fn key(&self, source: &KeySource, kid: &str, reach: Reach) -> Result<Option<DecodingKey>, String>;
    /// OpenID Connect UserInfo at `url`, with `bearer` as the access token.
    async fn userinfo(&self, url: &str, bearer: &str, reach: Reach) -> Result<Map<String, Value>, String>;
}

/// A ServiceAccount as the Kubernetes API server vouches for it (TokenReview).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewedServiceAccount {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The Pod a bound token belongs to: (name, uid).
    pub pod: Option<(String, String)>,
}

/// Asks the local cluster whether a ServiceAccount token is valid now, for these audiences
/// (Kubernetes TokenReview): a token of a deleted Pod or ServiceAccount stops working,
/// which an offline signature check cannot see.
#[async_trait]
pub trait TokenReviewer: Send + Sync {
    /// `Ok(None)`: the API server does not accept the token for these audiences.
    async fn review(&self, token: &str, audiences: &[String]) -> Result<Option<ReviewedServiceAccount>, String>;
}

/// Why an assertion is refused. Messages name the failed check (RFC 7523 §3.1 wants an
/// `invalid_grant` that says why), never key material or the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    #[error("the assertion is not a JWT (compact JWS with three parts)")]
    Malformed,
    #[error("the assertion is larger than {MAX_ASSERTION_BYTES} bytes")]
    TooLarge,
    #[error("the assertion is signed with {0}, which is not accepted here")]
    Algorithm(String),
    #[error("the assertion's typ {0:?} marks another kind of token (RFC 8725 §3.11)")]
    Type(String),
    #[error("the assertion's header has no kid")]
    NoKeyId,
    #[error("the assertion is signed by a key its issuer does not publish")]
    UnknownKey,
    #[error("the issuer's keys cannot be fetched: {0}")]
    KeysUnavailable(String),
    #[error("the assertion's signature is invalid")]
    Signature,
    #[error("the assertion lacks the {0} claim")]
    Missing(&'static str),
    #[error("the assertion's iss is not {0:?}")]
    Issuer(String),
    #[error("the assertion's aud does not name this server ({0})")]
    Audience(String),
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is not valid yet (nbf)")]
    NotYetValid,
    #[error("the assertion was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the assertion is valid for {0} s, more than the {1} s accepted")]
    TooLong(i64, i64),
}

/// What a valid assertion must say.
#[derive(Debug)]
pub struct Expectations<'a> {
    /// `iss`, exactly.
    pub issuer: &'a str,
    /// `aud` must contain one of these.
    pub audiences: &'a [String],
    pub algorithms: &'a [Algorithm],
    /// Longest accepted validity, seconds: `exp` minus `iat` (or `nbf`, or now).
    pub max_lifetime: i64,
}

/// The header and claims of an assertion, before its signature is checked: what decides
/// which issuer's keys verify it. Nothing read here is trusted.
#[derive(Debug)]
pub struct Unverified {
    pub header: Header,
    pub claims: Map<String, Value>,
}

impl Unverified {
    pub fn parse(assertion: &str) -> Result<Unverified, AssertionError> {
        if assertion.len() > MAX_ASSERTION_BYTES {
            return Err(AssertionError::TooLarge);
        }
        let mut parts = assertion.split('.');
        let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(AssertionError::Malformed);
        };
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| AssertionError::Malformed)?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload).map_err(|_| AssertionError::Malformed)?;
        Ok(Unverified { header, claims })
    }

    pub fn str(&self, claim: &str) -> Option<&str> {
        self.claims.get(claim).and_then(Value::as_str)
    }

    /// `aud` as a list (RFC 7519 §4.1.3: a string or an array of strings).
    pub fn audiences(&self) -> Vec<&str> {
        audiences(&self.claims)
    }
}

fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// RFC 8725 §3.11: a grant assertion is untyped or a plain `JWT`.
pub fn check_grant_type_header(header: &Header) -> Result<(), AssertionError> {
    match header.typ.as_deref() {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt") => Ok(()),
        Some(other) => Err(AssertionError::Type(other.to_string())),
    }
}

/// The `typ` of an Identity Assertion JWT Authorization Grant
/// (draft-ietf-oauth-identity-assertion-authz-grant, "ID-JAG").
pub const IDENTITY_ASSERTION_TYPE: &str = "oauth-id-jag+jwt";

/// Whether the header marks an ID-JAG (media types compare case-insensitively).
pub fn is_identity_assertion(header: &Header) -> bool {
    header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(IDENTITY_ASSERTION_TYPE))
}

/// The header's algorithm, if it is one of `allowed` (and asymmetric, whatever `allowed`
/// says).
pub fn check_algorithm(header: &Header, allowed: &[Algorithm]) -> Result<Algorithm, AssertionError> {
    let alg = header.alg;
    if !is_asymmetric(alg) || !allowed.contains(&alg) {
        return Err(AssertionError::Algorithm(format!("{alg:?}")));
    }
    Ok(alg)
}

/// Checks the time claims and the lifetime bound (pure, `now` given).
pub fn check_times(claims: &Map<String, Value>, max_lifetime: i64, now: i64) -> Result<(), AssertionError> {
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = number("exp").ok_or(AssertionError::Missing("exp"))?;
    if exp + LEEWAY <= now {
        return Err(AssertionError::Expired);
    }
    if number("nbf").is_some_and(|nbf| nbf > now + LEEWAY) {
        return Err(AssertionError::NotYetValid);
    }
    if number("iat").is_some_and(|iat| iat > now + LEEWAY) {
        return Err(AssertionError::IssuedInFuture);
    }
    let start = number("iat").or(number("nbf")).unwrap_or(now).min(now);
    if exp - start > max_lifetime {
        return Err(AssertionError::TooLong(exp - start, max_lifetime));
    }
    Ok(())
}

/// Verifies the signature with `key` and every claim rule; the claims when all hold.
pub fn verify(
    assertion: &str,
    key: &DecodingKey,
    expect: &Expectations<'_>,
    now: i64,
) -> Result<Map<String, Value>, AssertionError> {
    let unverified = Unverified::parse(assertion)?;
    let alg = check_algorithm(&unverified.header, expect.algorithms)?;
    let mut validation = Validation::new(alg);
    // Claims are checked below, against `now` (the core reads no clock) and with our
    // messages; the library checks the signature and that the key fits the algorithm.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(assertion, key, &validation)
        .map_err(|_| AssertionError::Signature)?
        .claims;
    check_claims(&claims, expect, now)?;
    Ok(claims)
}

/// The claim rules of [`verify`], for claims whose signature was verified (or vouched for
/// by the issuer itself, as TokenReview does).
pub fn check_claims(claims: &Map<String, Value>, expect: &Expectations<'_>, now: i64) -> Result<(), AssertionError> {
    match claims.get("iss").and_then(Value::as_str) {
        None => return Err(AssertionError::Missing("iss")),
        Some(iss) if iss != expect.issuer => return Err(AssertionError::Issuer(expect.issuer.to_string())),
        Some(_) => {}
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(AssertionError::Missing("sub"));
    }
    let aud = audiences(claims);
    if aud.is_empty() {
        return Err(AssertionError::Missing("aud"));
    }
    if !aud.iter().any(|a| expect.audiences.iter().any(|e| e == a)) {
        return Err(AssertionError::Audience(expect.audiences.join(", ")));
    }
    check_times(claims, expect.max_lifetime, now)
}

/// The key `kid` of an inline JWK set; without `kid`, the set's only key.
pub fn inline_key(set: &jsonwebtoken::jwk::JwkSet, kid: Option<&str>) -> Option<DecodingKey> {
    let jwk = match kid {
        Some(kid) => set.keys.iter().find(|k| k.common.key_id.as_deref() == Some(kid)),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }?;
    DecodingKey::from_jwk(jwk).ok()
}

/// Parses configured algorithm names; unknown or symmetric ones are an error.
pub fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Ok(DEFAULT_ALGORITHMS.to_vec());
    }
    names
        .iter()
        .map(|n| {
            n.parse::<Algorithm>()
                .ok()
                .filter(|a| is_asymmetric(*a))
                .ok_or_else(|| format!("algorithm {n:?} is not accepted (asymmetric JWS algorithms only)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const NOW: i64 = 1_800_000_000;

    fn expect<'a>(audiences: &'a [String]) -> Expectations<'a> {
        Expectations { issuer: "https://issuer.example", audiences, algorithms: DEFAULT_ALGORITHMS, max_lifetime: 600 }
    }

    #[test]
    fn claim_rules_name_the_failed_check() {
        let aud = vec!["https://us.example".to_string()];
        let ok = json!({"iss": "https://issuer.example", "sub": "s", "aud": ["x", "https://us.example"],
                        "exp": NOW + 300, "iat": NOW});
        assert_eq!(check_claims(&claims(ok.clone()), &expect(&aud), NOW), Ok(()));
        let with = |k: &str, v: Value| {
            let mut c = claims(ok.clone());
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.into(), v);
            }
            check_claims(&c, &expect(&aud), NOW).unwrap_err()
        };
        assert_eq!(
            with("iss", json!("https://issuer.example/")),
            AssertionError::Issuer("https://issuer.example".into())
        );
        assert_eq!(with("iss", Value::Null), AssertionError::Missing("iss"));
        assert_eq!(with("sub", Value::Null), AssertionError::Missing("sub"));
        assert_eq!(with("aud", json!("https://kubernetes.default.svc")), AssertionError::Audience(aud.join(", ")));
        assert_eq!(with("aud", Value::Null), AssertionError::Missing("aud"));
        assert_eq!(with("exp", Value::Null), AssertionError::Missing("exp"));
        assert_eq!(with("exp", json!(NOW - LEEWAY)), AssertionError::Expired);
        assert_eq!(with("nbf", json!(NOW + LEEWAY + 1)), AssertionError::NotYetValid);
        assert_eq!(with("iat", json!(NOW + LEEWAY + 1)), AssertionError::IssuedInFuture);
        assert_eq!(with("exp", json!(NOW + 601)), AssertionError::TooLong(601, 600));
        // Without iat, the lifetime counts from now: a far exp is still refused.
        let mut c = claims(ok.clone());
        c.remove("iat");
        c.insert("exp".into(), json!(NOW + 86_400));
        assert_eq!(check_claims(&c, &expect(&aud), NOW).unwrap_err(), AssertionError::TooLong(86_400, 600));
    }

    #[test]
    fn only_asymmetric_algorithms_and_untyped_or_jwt() {
        let header = |alg, typ: Option<&str>| Header { alg, typ: typ.map(str::to_string), ..Header::default() };
        assert!(check_algorithm(&header(Algorithm::RS256, None), DEFAULT_ALGORITHMS).is_ok());
        assert!(check_algorithm(&header(Algorithm::HS256, None), &[Algorithm::HS256]).is_err(), "never HMAC");
        assert!(check_algorithm(&header(Algorithm::ES384, None), DEFAULT_ALGORITHMS).is_err(), "not configured");
        assert!(check_grant_type_header(&header(Algorithm::RS256, Some("JWT"))).is_ok());
        assert!(check_grant_type_header(&header(Algorithm::RS256, None)).is_ok());
        for typ in ["at+jwt", "client-authentication+jwt", "logout+jwt"] {
            assert!(check_grant_type_header(&header(Algorithm::RS256, Some(typ))).is_err(), "{typ}");
        }
        assert!(parse_algorithms(&["HS256".into()]).is_err());
        assert!(parse_algorithms(&["none".into()]).is_err());
        assert_eq!(parse_algorithms(&["ES256".into()]).unwrap(), [Algorithm::ES256]);
    }

    #[test]
    fn unverified_parse_is_bounded_and_strict() {
        assert_eq!(Unverified::parse(&"a".repeat(MAX_ASSERTION_BYTES + 1)).unwrap_err(), AssertionError::TooLarge);
        assert_eq!(Unverified::parse("a.b").unwrap_err(), AssertionError::Malformed);
        assert_eq!(Unverified::parse("a.b.c.d").unwrap_err(), AssertionError::Malformed);
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"iss":"i","aud":"a"}"#);
        let parsed = Unverified::parse(&format!("{h}.{p}.sig")).unwrap();
        assert_eq!(parsed.str("iss"), Some("i"));
        assert_eq!(parsed.audiences(), ["a"]);
        assert_eq!(parsed.header.kid.as_deref(), Some("k"));
    }
}
