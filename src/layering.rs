//! The layering of `lib.rs`, checked: each module may import only the modules listed for
//! it, and the OAuth core imports no HTTP, Kubernetes or network crate and never reads
//! the clock. A new dependency between rooms is a decision: make it here, on purpose.

use std::collections::BTreeSet;
use std::path::Path;

/// Which modules of this crate each module may name (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("api", &[]),
    ("protocol", &[]),
    ("clock", &[]),
    ("secrets", &[]),
    ("metrics", &[]),
    // Email through an SMTP relay: the core holds the `Mailer` trait, the runtime builds it.
    // Message-IDs are random tokens.
    ("mail", &["secrets"]),
    // Request ids are random tokens.
    ("audit", &["secrets"]),
    ("private_file", &["secrets"]),
    ("catalog", &["api", "protocol", "secrets"]),
    // Opaque access tokens are stored with their claims.
    ("store", &["api", "protocol", "secrets", "tokens"]),
    ("tokens", &["api", "private_file", "secrets"]),
    ("cimd", &["protocol"]),
    ("remote_keys", &["cimd"]),
    ("identity", &["api", "catalog", "remote_keys"]),
    (
        "oauth",
        &[
            "api",
            "audit",
            "catalog",
            "cimd",
            "identity",
            "mail",
            "protocol",
            "remote_keys",
            "secrets",
            "store",
            "tokens",
        ],
    ),
    ("admin", &["api", "protocol", "store"]),
    ("resource_server", &["api", "catalog", "protocol", "remote_keys", "tokens"]),
    (
        "http",
        &[
            "admin", "api", "audit", "catalog", "clock", "identity", "mail", "metrics", "oauth", "protocol", "secrets",
            "store",
        ],
    ),
    // The runtime assembles everything below it; the command line sits on top.
    (
        "runtime",
        &[
            "admin",
            "api",
            "audit",
            "catalog",
            "cimd",
            "clock",
            "controller",
            "http",
            "identity",
            "mail",
            "metrics",
            "oauth",
            "private_file",
            "protocol",
            "remote_keys",
            "secrets",
            "store",
            "tokens",
        ],
    ),
    ("cli", &["admin", "api", "audit", "catalog", "clock", "http", "mail", "runtime", "store"]),
    (
        "controller",
        &[
            "admin",
            "api",
            "audit",
            "catalog",
            "clock",
            "metrics",
            "private_file",
            "protocol",
            "secrets",
            "store",
            "tokens",
        ],
    ),
];

/// Crates the core must not use: it decides, others talk HTTP, Kubernetes and the network.
const FORBIDDEN_IN_CORE: &[&str] = &["axum::", "hyper::", "kube::", "k8s_openapi::", "reqwest::", "tower::"];
/// Ways to read the wall clock; the core takes `now` as a parameter.
const CLOCKS: &[&str] = &["clock::now", "Timestamp::now", "SystemTime::now", "Utc::now"];

fn sources(module: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let file = root.join(format!("{module}.rs"));
    if file.exists() {
        out.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap()));
    }
    let mut dirs = vec![root.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    assert!(!out.is_empty(), "no sources for module {module}");
    out
}

/// The top-level modules a source names through `crate::a` or `crate::{a, b::c}`.
fn named_modules(source: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (i, _) in source.match_indices("crate::") {
        let rest = &source[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())).filter(|m| !m.is_empty()));
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

#[test]
fn modules_import_only_the_floors_below_them() {
    let mut violations = Vec::new();
    for (module, allowed) in ALLOWED {
        for (file, source) in sources(module) {
            for named in named_modules(&source) {
                if named != *module && !allowed.contains(&named.as_str()) {
                    violations.push(format!("{file}: {module} imports {named}"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "imports against the layering of lib.rs:\n{}", violations.join("\n"));
}

#[test]
fn the_core_speaks_no_http_kubernetes_or_network_and_reads_no_clock() {
    let mut violations = Vec::new();
    for (file, source) in sources("oauth") {
        for needle in FORBIDDEN_IN_CORE.iter().chain(CLOCKS) {
            if source.contains(needle) {
                violations.push(format!("{file}: {needle}"));
            }
        }
    }
    assert!(violations.is_empty(), "the OAuth core must stay pure:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_plain_imports() {
    let names = named_modules("use crate::{api::X, store}; let _ = crate::oauth::y(); use crate::http;");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["api", "http", "oauth", "store"]);
}
