//! `inbound check` and `inbound crds`, run as the binary.

use std::process::Command;

fn inbound(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_inbound"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn examples_are_valid() {
    let (code, stdout, stderr) = inbound(&["check", "examples/quickstart"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "15 object(s) checked, no problems");
    for (folder, objects) in
        [("examples/cluster", 6), ("examples/mcp", 4), ("examples/identity", 3), ("examples/tenants", 8)]
    {
        let (code, stdout, stderr) = inbound(&["check", folder]);
        assert_eq!(code, 0, "{folder}: {stderr}");
        assert_eq!(stdout.trim(), format!("{objects} object(s) checked, no problems"), "{folder}");
    }
}

#[test]
fn broken_manifests_get_exact_messages() {
    let (code, _, stderr) = inbound(&["check", "tests/fixtures/broken"]);
    assert_eq!(code, 1);
    let expected = r#"tests/fixtures/broken/apps.yaml: InboundApp default/billing-agent: spec.redirectUris[1]: must be https, or http on a loopback address
tests/fixtures/broken/apps.yaml: InboundApp default/billing-agent: spec.allowedScopes[1]: no Scope in namespace default declares scope "billing:delete"
tests/fixtures/broken/apps.yaml: InboundApp default/cli: spec.grantTypes[0]: client_credentials requires a confidential client (spec.clientType is public)
tests/fixtures/broken/apps.yaml: InboundApp default/cli: spec.tokenEndpointAuthMethod: a public client has no secret: must be none, got client_secret_basic
tests/fixtures/broken/apps.yaml: InboundApp default/cli: spec.tokens.accessTokenLifetime: must be a duration such as 90s, 15m, 1h30m or 30d, got "1 hour"
tests/fixtures/broken/apps.yaml: InboundApp default/typo: spec.redirectUri: unknown field
tests/fixtures/broken/apps.yaml: InboundApp default/bad-enum: spec.grantTypes[0]: unknown variant `password`, expected one of `client_credentials`, `authorization_code`, `refresh_token`, `urn:ietf:params:oauth:grant-type:jwt-bearer`, `urn:ietf:params:oauth:grant-type:token-exchange`, `urn:ietf:params:oauth:grant-type:device_code`, `urn:openid:params:grant-type:ciba`
tests/fixtures/broken/apps.yaml: InboundApp default/billing-agent: metadata.name: duplicate object: already defined in tests/fixtures/broken/apps.yaml (document 1)
tests/fixtures/broken/apps.yaml: InboundApp default/forever: spec.tokens.accessTokenLifetime: must be at most 24h, got 2d
tests/fixtures/broken/apps.yaml: InboundApp default/forever: spec.tokens.refreshTokenLifetime: must be at most 3650d, got "106751991167300d"
tests/fixtures/broken/apps.yaml: InboundApp default/forever: spec.tokens.idTokenLifetime: must be a duration such as 90s, 15m, 1h30m or 30d, got "soon"
tests/fixtures/broken/apps.yaml: InboundApp default/ci-deployer: spec.trustedIssuers[0].issuer: must be an https URL (http only on a loopback address)
tests/fixtures/broken/apps.yaml: InboundApp default/ci-deployer: spec.trustedIssuers[0].jwks: give the keys inline (jwks) or where to fetch them (jwksUri), not both
tests/fixtures/broken/apps.yaml: InboundApp default/ci-deployer: spec.trustedIssuers[0].jwks: keys[0] is a private key: publish only public keys
tests/fixtures/broken/apps.yaml: InboundApp default/ci-deployer: spec.trustedIssuers[0].algorithms[0]: "HS256" is not accepted: one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA (never none or HMAC)
tests/fixtures/broken/grants.yaml: ClientGrant default/ghost: spec.subject.name: InboundApp default/ghost does not exist
tests/fixtures/broken/grants.yaml: ClientGrant default/ghost: spec.resources[0]: must be an absolute URI: relative URL without a base
tests/fixtures/broken/grants.yaml: ClientGrant default/ghost: spec.expiresAt: must be an RFC 3339 time such as 2027-01-31T00:00:00Z
tests/fixtures/broken/grants.yaml: ClientGrant default/needs-cc: spec.subject.name: InboundApp default/billing-agent allows neither the client_credentials nor the JWT bearer grant
tests/fixtures/broken/grants.yaml: ClientGrant default/needs-exchange: spec.tokenExchange: InboundApp default/billing-agent does not allow the urn:ietf:params:oauth:grant-type:token-exchange grant
tests/fixtures/broken/grants.yaml: ClientGrant default/workload-exchange: spec.tokenExchange: only an InboundApp can exchange tokens (it authenticates as itself); a ServiceAccount's token can be exchanged by an app whose delegation grant accepts Jwt subject tokens
tests/fixtures/broken/grants.yaml: Scope default/no-version: apiVersion: must be inbound.dev/v1alpha1, got ""
tests/fixtures/broken/grants.yaml: ConsentPolicy default/policy: spec.consent.durations[1]: exceeds spec.consent.maxDuration (90d)
tests/fixtures/broken/grants.yaml: ConsentPolicy default/policy: spec.consent.defaultDuration: must be one of spec.consent.durations
tests/fixtures/broken/grants.yaml: InboundApp ../../etc/escape: metadata.namespace: must be a lowercase RFC 1123 label (a-z, 0-9, '-'), at most 63 characters
tests/fixtures/broken/ownership.yaml: Scope team-b/refund: spec.resource: resource https://billing.example.com is owned by namespace team-a (declared first by Scope team-a/refund); only objects there can grant it
tests/fixtures/broken/ownership.yaml: ClientGrant team-b/self-service: spec.resources[0]: resource https://billing.example.com is owned by namespace team-a (declared first by Scope team-a/refund); only objects there can grant it
tests/fixtures/broken/ownership.yaml: ClientGrant team-b/self-service: spec.resources[1]: no Scope declares resource https://nobody.example.com: the namespace that owns an API declares its scopes with spec.resource, which makes it the owner
tests/fixtures/broken/ownership.yaml: Scope team-b/admin: spec.resource: scope "admin" without a resource is a scope of the server's default audience, declared first by Scope team-a/admin; name your API with spec.resource, or choose another scope string
tests/fixtures/broken/registration.yaml: ConsentPolicy default/mcp: spec.registration.approvedScopes[0]: no Scope in namespace default declares scope "tools:run"
tests/fixtures/broken/registration.yaml: ConsentPolicy default/mcp: spec.registration.redirectUriPatterns[0]: redirect pattern `https://*.com/cb`: host `*.com`: `*` is not allowed in the registrable domain; write a fixed domain you control after the wildcard label (like `*.example.com`)
tests/fixtures/broken/registration.yaml: ConsentPolicy default/mcp: spec.registration.resources[0]: must be an absolute http(s) URL without a fragment
tests/fixtures/broken/registration.yaml: ConsentPolicy default/mcp: spec.registration.clientIdMetadataDocuments.allowedDomains[0]: allowed domain `*`: a wildcard is only allowed as a leading `*.`
tests/fixtures/broken/registration.yaml: ConsentPolicy default/second: spec.registration: only one ConsentPolicy may enable self-registration; ConsentPolicy default/mcp does
34 problem(s)
"#;
    assert_eq!(stderr, expected);
}

#[test]
fn invalid_yaml_and_missing_paths_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.yaml");
    std::fs::write(&file, "apiVersion: inbound.dev/v1alpha1\nkind: [unclosed\n").unwrap();
    let (code, _, stderr) = inbound(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with(&format!("{}: document 1: invalid YAML:", file.display())), "{stderr}");
    let (code, _, stderr) = inbound(&["check", "no/such/dir"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("no/such/dir: cannot read: "), "{stderr}");
}

#[test]
fn crds_folder_matches_the_types() {
    let (code, stdout, _) = inbound(&["crds"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/inbound.dev.yaml")).unwrap();
    assert!(committed == stdout, "crds/ drifted from src/api: run `make crds`");
    for kind in ["InboundApp", "Scope", "ClientGrant", "ConsentPolicy"] {
        assert!(stdout.contains(&format!("kind: {kind}\n")), "{kind}");
    }
    assert!(stdout.contains("- inbound\n"), "category inbound");
    assert!(stdout.contains("subresources:\n      status: {}"), "status subresource");
}
