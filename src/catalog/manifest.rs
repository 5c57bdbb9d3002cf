//! Reading manifests: multi-document YAML in, typed objects and located problems out.
//!
//! Manifests are ordinary Kubernetes objects (apiVersion, kind, metadata, spec), so the
//! files of a `inbound serve` folder can be `kubectl apply`-ed unchanged.

use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{API_VERSION, ClientGrant, ConsentPolicy, DevelopmentUser, IdentityProvider, InboundApp, Scope};

/// A parsed custom resource of one of the four kinds.
#[derive(Clone, Debug)]
pub enum Object {
    App(Box<InboundApp>),
    Scope(Box<Scope>),
    Grant(Box<ClientGrant>),
    Policy(Box<ConsentPolicy>),
    /// Folder mode only: a static end user.
    User(Box<DevelopmentUser>),
    /// An identity source for end-user sign-in.
    Provider(Box<IdentityProvider>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::App(_) => "InboundApp",
            Object::Scope(_) => "Scope",
            Object::Grant(_) => "ClientGrant",
            Object::Policy(_) => "ConsentPolicy",
            Object::User(_) => "DevelopmentUser",
            Object::Provider(_) => "IdentityProvider",
        }
    }

    pub fn metadata(&self) -> &kube::core::ObjectMeta {
        match self {
            Object::App(o) => &o.metadata,
            Object::Scope(o) => &o.metadata,
            Object::Grant(o) => &o.metadata,
            Object::Policy(o) => &o.metadata,
            Object::User(o) => &o.metadata,
            Object::Provider(o) => &o.metadata,
        }
    }

    /// `Kind namespace/name`, the way problems name an object.
    pub fn display_name(&self) -> String {
        let meta = self.metadata();
        format!("{} {}/{}", self.kind(), crate::api::namespace_of(meta), meta.name.as_deref().unwrap_or(""))
    }
}

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// File path as given by the user (or a synthetic name such as `<stdin>`).
    pub file: String,
    /// 1-based index of the YAML document within the file.
    pub document: usize,
}

/// One parsed object and where it came from.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub source: Source,
    pub object: Object,
}

/// Something wrong with a manifest, located down to the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub source: Source,
    /// `Kind namespace/name` when the document names an object.
    pub object: Option<String>,
    /// Field path, e.g. `spec.redirectUris[1]`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source.file)?;
        match &self.object {
            Some(object) => write!(f, "{object}: ")?,
            // Document 0: the problem concerns the whole file (it cannot be read).
            None if self.source.document == 0 => {}
            None => write!(f, "document {}: ", self.source.document)?,
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Parses every document of one file. Problems never stop the other documents.
pub fn parse_file(file: &str, text: &str) -> (Vec<Manifest>, Vec<Problem>) {
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let source = Source { file: file.to_string(), document: index + 1 };
        let value = match serde_json::Value::deserialize(document) {
            Ok(serde_json::Value::Null) => continue, // empty document, e.g. a trailing `---`
            Ok(value) => value,
            Err(e) => {
                problems.push(Problem { source, object: None, field: None, message: format!("invalid YAML: {e}") });
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        };
        if is_foreign(&value) {
            // A Deployment, Pod, Secret... beside inbound's resources (a GitOps folder holds
            // both): not ours to check or serve.
            continue;
        }
        match parse_object(value) {
            Ok((object, unknown)) => {
                let name = object.display_name();
                for path in unknown {
                    problems.push(Problem {
                        source: source.clone(),
                        object: Some(name.clone()),
                        field: Some(path),
                        message: "unknown field".into(),
                    });
                }
                manifests.push(Manifest { source, object });
            }
            Err(mut problem) => {
                problem.source = source;
                problems.push(problem);
            }
        }
    }
    (manifests, problems)
}

/// An object of another API group. A missing apiVersion is not foreign: it is an error.
fn is_foreign(value: &serde_json::Value) -> bool {
    let api_version = value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(group, _)| group).unwrap_or("");
    !api_version.is_empty() && group != crate::api::GROUP
}

fn parse_object(value: serde_json::Value) -> Result<(Object, Vec<String>), Problem> {
    let problem = |object: Option<String>, field: Option<&str>, message: String| Problem {
        source: Source { file: String::new(), document: 0 },
        object,
        field: field.map(str::to_string),
        message,
    };
    let serde_json::Value::Object(map) = &value else {
        return Err(problem(None, None, "must be a mapping with apiVersion, kind, metadata and spec".into()));
    };
    let kind = map.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_string();
    let meta = map.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(|n| n.as_str());
    let namespace = meta.and_then(|m| m.get("namespace")).and_then(|n| n.as_str()).unwrap_or("default");
    let object_name = name.map(|n| format!("{kind} {namespace}/{n}"));

    let api_version = map.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    if api_version != API_VERSION {
        return Err(problem(object_name, Some("apiVersion"), format!("must be {API_VERSION}, got {api_version:?}")));
    }
    if name.is_none_or(str::is_empty) {
        return Err(problem(None, Some("metadata.name"), "is required".into()));
    }
    let result = match kind.as_str() {
        "InboundApp" => typed::<InboundApp>(value).map(|(o, u)| (Object::App(Box::new(o)), u)),
        "Scope" => typed::<Scope>(value).map(|(o, u)| (Object::Scope(Box::new(o)), u)),
        "ClientGrant" => typed::<ClientGrant>(value).map(|(o, u)| (Object::Grant(Box::new(o)), u)),
        "ConsentPolicy" => typed::<ConsentPolicy>(value).map(|(o, u)| (Object::Policy(Box::new(o)), u)),
        "DevelopmentUser" => typed::<DevelopmentUser>(value).map(|(o, u)| (Object::User(Box::new(o)), u)),
        "IdentityProvider" => typed::<IdentityProvider>(value).map(|(o, u)| (Object::Provider(Box::new(o)), u)),
        other => {
            return Err(problem(
                object_name,
                Some("kind"),
                format!(
                    "must be one of InboundApp, Scope, ClientGrant, ConsentPolicy, IdentityProvider, DevelopmentUser, got {other:?}"
                ),
            ));
        }
    };
    result.map_err(|(field, message)| problem(object_name, Some(&field), message))
}

/// Deserializes with the failing field's path and collects every unknown field.
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<(T, Vec<String>), (String, String)> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        let path = format_ignored(&path);
        // The generated root types take apiVersion and kind from the type, not the input;
        // both were checked before.
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    match serde_path_to_error::deserialize::<_, T>(ignored) {
        Ok(object) => Ok((object, unknown)),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::from("(root)") } else { path };
            Err((path, e.into_inner().to_string()))
        }
    }
}

/// `spec.redirectUris[1]` style, matching serde_path_to_error's rendering.
fn format_ignored(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", format_ignored(parent)),
        Path::Map { parent, key } => {
            let parent = format_ignored(parent);
            if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            format_ignored(parent)
        }
    }
}
