//! Form parameters of OAuth requests (`application/x-www-form-urlencoded`).

use std::collections::HashMap;

use super::OAuthError;

/// Parameters allowed to repeat: RFC 8707 §2 lets a client name several resources, and
/// RFC 8693 §2.1 several audiences.
const MULTI_VALUED: &[&str] = &["resource", "audience"];

/// Parsed request parameters, with the RFC 6749 §3.1/§3.2 rules applied: a parameter
/// without a value is treated as omitted, and a parameter sent twice is an error.
#[derive(Debug, Default)]
pub struct Params {
    single: HashMap<String, String>,
    resources: Vec<String>,
    audiences: Vec<String>,
}

impl Params {
    pub fn parse(body: &[u8]) -> Result<Params, OAuthError> {
        let mut params = Params::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if MULTI_VALUED.contains(&name.as_ref()) {
                let values = if name == "resource" { &mut params.resources } else { &mut params.audiences };
                values.push(value.into_owned());
                continue;
            }
            if params.single.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter {name} is included more than once")));
            }
        }
        Ok(params)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("missing required parameter {name}")))
    }

    /// RFC 8707 `resource` values, in request order.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// RFC 8693 `audience` values, in request order.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    #[test]
    fn repeated_parameter_is_invalid_request() {
        let err = Params::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("grant_type"));
    }

    #[test]
    fn empty_values_are_omitted_and_resource_repeats() {
        let p =
            Params::parse(b"scope=&resource=https%3A%2F%2Fa&resource=https://b&x=1+2&audience=c&audience=d").unwrap();
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.resources(), ["https://a", "https://b"]);
        assert_eq!(p.audiences(), ["c", "d"]);
        assert_eq!(p.get("x"), Some("1 2"));
        assert!(p.require("grant_type").is_err());
    }
}
