//! The Flux `healthCheckExprs` of config/flux/kustomization.yaml, evaluated by a CEL
//! interpreter (the `cel` crate) the way Flux does: `inProgress`, then `failed`, then
//! `current`; the first that holds decides, and none means in progress. The operator tests
//! call [`health_of`] on the objects the controller really wrote, beside Argo CD's check.

use std::path::Path;

use serde_json::Value;

/// Flux's verdict on a live object: `Current`, `InProgress` or `Failed`.
pub(crate) fn health_of(object: &Value) -> &'static str {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flux/kustomization.yaml");
    let kustomization: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let exprs = kustomization["spec"]["healthCheckExprs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == object["kind"] && e["apiVersion"] == object["apiVersion"])
        .unwrap_or_else(|| panic!("no healthCheckExprs for {}", object["kind"]))
        .clone();
    let mut context = cel::Context::default();
    for variable in ["metadata", "spec", "status"] {
        context.add_variable(variable, object[variable].clone()).unwrap();
    }
    let holds = |name: &str| {
        let Some(expression) = exprs[name].as_str() else { return false };
        let program = cel::Program::compile(expression).unwrap_or_else(|e| panic!("{name}: {expression}: {e:?}"));
        match program.execute(&context) {
            Ok(cel::Value::Bool(b)) => b,
            other => panic!("{name} of {}: {other:?}", object["kind"]),
        }
    };
    if holds("inProgress") {
        "InProgress"
    } else if holds("failed") {
        "Failed"
    } else if holds("current") {
        "Current"
    } else {
        "InProgress"
    }
}

#[test]
fn every_expression_compiles_and_names_a_kind_of_the_crds() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flux/kustomization.yaml");
    let kustomization: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let kinds = ["InboundApp", "Scope", "ClientGrant", "ConsentPolicy"];
    for exprs in kustomization["spec"]["healthCheckExprs"].as_array().unwrap() {
        assert_eq!(exprs["apiVersion"], "inbound.dev/v1alpha1");
        assert!(kinds.contains(&exprs["kind"].as_str().unwrap()), "{exprs}");
        for name in ["current", "inProgress", "failed"] {
            if let Some(expression) = exprs[name].as_str() {
                cel::Program::compile(expression).unwrap_or_else(|e| panic!("{expression}: {e:?}"));
            }
        }
    }
}
