//! Validation of the watched objects: the same rules as `inbound check`, applied so that one
//! invalid resource never blocks the others.
//!
//! An invalid object is left out of the served catalog. Leaving it out can make objects that
//! refer to it invalid in turn (a ClientGrant whose InboundApp is invalid), so validation is
//! repeated on the remaining objects until nothing more is removed.

use std::collections::{BTreeMap, HashMap};

use crate::api::{ClientGrant, ClientType, ConsentPolicy, IdentityProvider, InboundApp, ObjectKey, Scope};
use crate::catalog::ClientRecord;
use crate::catalog::manifest::{Manifest, Object, Problem, Source};
use crate::catalog::validate::{Trust, validate_with};
use crate::clock::now;
use crate::store::{Store, StoreError};

/// The objects of the inbound.dev kinds, as the watch caches hold them.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub apps: Vec<InboundApp>,
    pub scopes: Vec<Scope>,
    pub grants: Vec<ClientGrant>,
    pub policies: Vec<ConsentPolicy>,
    pub providers: Vec<IdentityProvider>,
}

/// The result of validating a set of objects.
#[derive(Debug, Default)]
pub struct Validated {
    /// Objects to serve (valid and not being deleted).
    pub manifests: Vec<Manifest>,
    /// Problems by `Kind namespace/name`.
    pub problems: BTreeMap<String, Vec<Problem>>,
}

impl Validated {
    /// The status message for an invalid object: its problems as `field: message`, joined.
    pub fn message(&self, object: &str) -> Option<String> {
        let problems = self.problems.get(object)?;
        let lines: Vec<String> = problems
            .iter()
            .map(|p| match &p.field {
                Some(field) => format!("{field}: {}", p.message),
                None => p.message.clone(),
            })
            .collect();
        Some(lines.join("; "))
    }
}

pub fn validate_objects(objects: &Objects, trust: &Trust) -> Validated {
    let source = |kind: &str| Source { file: format!("kubernetes {kind}"), document: 1 };
    let mut manifests: Vec<Manifest> = Vec::new();
    // Objects being deleted are no longer served, whatever their spec says.
    let live = |meta: &kube::core::ObjectMeta| meta.deletion_timestamp.is_none();
    for app in objects.apps.iter().filter(|o| live(&o.metadata)) {
        manifests.push(Manifest { source: source("InboundApp"), object: Object::App(Box::new(app.clone())) });
    }
    for scope in objects.scopes.iter().filter(|o| live(&o.metadata)) {
        manifests.push(Manifest { source: source("Scope"), object: Object::Scope(Box::new(scope.clone())) });
    }
    for grant in objects.grants.iter().filter(|o| live(&o.metadata)) {
        manifests.push(Manifest { source: source("ClientGrant"), object: Object::Grant(Box::new(grant.clone())) });
    }
    for policy in objects.policies.iter().filter(|o| live(&o.metadata)) {
        manifests.push(Manifest { source: source("ConsentPolicy"), object: Object::Policy(Box::new(policy.clone())) });
    }
    for provider in objects.providers.iter().filter(|o| live(&o.metadata)) {
        manifests.push(Manifest {
            source: source("IdentityProvider"),
            object: Object::Provider(Box::new(provider.clone())),
        });
    }
    // Stable order: problems and the catalog do not depend on watch event order.
    manifests.sort_by_key(|m| m.object.display_name());

    let mut problems: BTreeMap<String, Vec<Problem>> = BTreeMap::new();
    // What the object's own status says it was: an immutable field changed.
    for m in &manifests {
        if let Object::App(app) = &m.object
            && let Some(message) = client_type_changed(app)
        {
            let object = m.object.display_name();
            let problem = Problem {
                source: m.source.clone(),
                object: Some(object.clone()),
                field: Some("spec.clientType".into()),
                message,
            };
            problems.entry(object).or_default().push(problem);
        }
    }
    manifests.retain(|m| !problems.contains_key(&m.object.display_name()));
    // Each round removes at least one object, so this ends; the bound is a safety net.
    for _ in 0..=manifests.len() {
        let found = validate_with(&manifests, trust);
        if found.is_empty() {
            break;
        }
        for problem in found {
            let object = problem.object.clone().unwrap_or_default();
            problems.entry(object).or_default().push(problem);
        }
        manifests.retain(|m| !problems.contains_key(&m.object.display_name()));
    }
    Validated { manifests, problems }
}

/// `spec.clientType` is immutable (a confidential app turned public would keep a secret that
/// means nothing; a public one turned confidential would hand a secret to what its users
/// consented to as a public client). Clusters from 1.25 refuse the change at admission (the
/// chart's CRDs carry the CEL rule); before, the status records what the app was, and every
/// replica reads it there: the changed app is not served.
pub fn client_type_changed(app: &InboundApp) -> Option<String> {
    // Reconciled before: a client id shown, and a Secret exactly when it was confidential.
    let current = app.status.as_ref()?;
    current.client_id.as_ref()?;
    let was_confidential = current.secret_name.is_some();
    let confidential = app.spec.client_type == crate::api::ClientType::Confidential;
    (was_confidential != confidential).then(|| {
        let was = if was_confidential { "confidential" } else { "public" };
        format!("is immutable: this app is {was}; restore it, or create a new app")
    })
}

/// Credentials of the valid apps: public apps need none; confidential apps are served once
/// the store holds a secret for them (the leader's reconcile issues it); apps with a
/// declared client id once they hold its claim.
pub async fn client_records(
    validated: &Validated,
    store: &dyn Store,
) -> Result<HashMap<ObjectKey, ClientRecord>, StoreError> {
    let mut records = HashMap::new();
    for m in &validated.manifests {
        let Object::App(app) = &m.object else { continue };
        let Some(client_id) = app.client_id().map(str::to_string) else { continue };
        let key = ObjectKey::of(&app.metadata);
        // A declared client id is served only for the app that holds its claim (the
        // leader claims it); never for an object that merely names it.
        if app.spec.client_id.is_some() && store.client_id_holder(&client_id).await?.as_ref() != Some(&key) {
            continue;
        }
        let secret_hashes = if app.spec.client_type == ClientType::Confidential {
            let hashes = store.client_secret_hashes(&client_id, now()).await?;
            if hashes.is_empty() {
                continue;
            }
            hashes
        } else {
            Vec::new()
        };
        records.insert(key, ClientRecord { client_id, secret_hashes });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::InboundAppStatus;
    use crate::catalog::manifest::parse_file;

    fn objects(yaml: &str) -> Objects {
        let (manifests, problems) = parse_file("test.yaml", yaml);
        assert!(problems.is_empty(), "{problems:?}");
        let mut objects = Objects::default();
        for m in manifests {
            match m.object {
                Object::App(o) => objects.apps.push(*o),
                Object::Scope(o) => objects.scopes.push(*o),
                Object::Grant(o) => objects.grants.push(*o),
                Object::Policy(o) => objects.policies.push(*o),
                Object::Provider(o) => objects.providers.push(*o),
                Object::User(_) => unreachable!(),
            }
        }
        objects
    }

    const VALID: &str = "
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: read, namespace: ns}
spec: {scope: 'billing:read', description: Read invoices}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: good, namespace: ns}
spec: {displayName: Good, grantTypes: [client_credentials], allowedScopes: ['billing:read']}
";

    #[test]
    fn the_client_type_cannot_flip_once_reconciled() {
        let (manifests, _) = parse_file(
            "a.yaml",
            "apiVersion: inbound.dev/v1alpha1\nkind: InboundApp\nmetadata: {name: a, namespace: ns}\nspec: {displayName: A, clientType: public, grantTypes: [authorization_code], redirectUris: ['https://a.example.com/cb']}\n",
        );
        let Object::App(app) = manifests[0].object.clone() else { unreachable!() };
        let mut app = *app;
        assert_eq!(client_type_changed(&app), None, "never reconciled: nothing to compare");
        let was_public = InboundAppStatus { client_id: Some("id".into()), ..Default::default() };
        app.status = Some(was_public.clone());
        assert_eq!(client_type_changed(&app), None);
        app.status = Some(InboundAppStatus { secret_name: Some("a-credentials".into()), ..was_public });
        let message = client_type_changed(&app).unwrap();
        assert!(message.starts_with("is immutable: this app is confidential"), "{message}");
        let validated = validate_objects(&Objects { apps: vec![app], ..Default::default() }, &Trust::default());
        assert!(validated.manifests.is_empty(), "not served");
        assert!(validated.message("InboundApp ns/a").unwrap().starts_with("spec.clientType: is immutable"));
    }

    #[test]
    fn an_invalid_object_is_left_out_and_named_with_its_field() {
        let mut yaml = VALID.to_string();
        yaml.push_str(
            "---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: bad, namespace: ns}
spec: {displayName: Bad, grantTypes: [authorization_code], redirectUris: ['http://evil.example/cb']}
",
        );
        let validated = validate_objects(&objects(&yaml), &Trust::default());
        let served: Vec<String> = validated.manifests.iter().map(|m| m.object.display_name()).collect();
        assert_eq!(served, ["InboundApp ns/good", "Scope ns/read"]);
        let message = validated.message("InboundApp ns/bad").unwrap();
        assert!(message.starts_with("spec.redirectUris[0]: "), "{message}");
        assert_eq!(validated.message("InboundApp ns/good"), None);
    }

    #[test]
    fn objects_referring_to_an_invalid_object_are_left_out_too() {
        let yaml = "
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: bad, namespace: ns}
spec: {displayName: Bad, grantTypes: [client_credentials], allowedScopes: ['not declared']}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: g, namespace: ns}
spec: {subject: {kind: InboundApp, name: bad}, scopes: []}
";
        let validated = validate_objects(&objects(yaml), &Trust::default());
        assert!(validated.manifests.is_empty(), "{:?}", validated.manifests);
        assert!(validated.problems.contains_key("InboundApp ns/bad"));
        assert!(validated.problems.contains_key("ClientGrant ns/g"), "{:?}", validated.problems);
    }
}
