//! The Argo CD health checks in config/argocd/<Kind>/health.lua, run by a real Lua
//! interpreter (`lua5.4`, installed by scripts/test-deps.sh) against the cases of each
//! kind's health_test.yaml (Argo CD's resource_customizations layout), and the argocd-cm
//! patch that must embed those scripts verbatim.

use std::{
    collections::BTreeSet,
    fs,
    io::{ErrorKind, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde::Deserialize;
use serde_json::{Value, json};

const KINDS: [&str; 4] = ["InboundApp", "Scope", "ClientGrant", "ConsentPolicy"];
const LUA: &str = "lua5.4";
const PATCH: &str = "argocd-cm-patch.yaml";

/// A kind's health_test.yaml, as Argo CD's own resource_customizations tests read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HealthTest {
    health_status: HealthStatus,
    input_path: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthStatus {
    status: String,
    message: String,
}

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/argocd")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{} is not valid: {e}", path.display()))
}

fn health_tests(kind: &str) -> Vec<HealthTest> {
    let tests: HealthTests = read_yaml(&argocd_dir().join(kind).join("health_test.yaml"));
    assert!(!tests.tests.is_empty(), "{kind}/health_test.yaml lists no tests");
    tests.tests
}

/// Appends `s` as a Lua string literal: quotes and backslashes escaped, control characters
/// written as `\ddd` (always three digits, so a following digit cannot be read as part of
/// the escape), other text kept as is (Lua strings are bytes; UTF-8 passes through).
fn lua_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `value` as a Lua table constructor / literal, the way Argo CD hands a resource to
/// its Lua health checks: objects become tables keyed by strings, arrays become sequences
/// (1-based), and nulls are left out (a nil field is an absent field in Lua; gopher-lua's
/// append ignores nil array items too).
fn lua_literal(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                // Above i64::MAX: Lua 5.4 reads such a literal as a float, which is the best
                // it can do.
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().expect("a JSON number is an i64, a u64 or a finite f64");
                // `{:?}` keeps a decimal point or an exponent, so Lua reads a float back.
                out.push_str(&format!("{f:?}"));
            }
        }
        Value::String(s) => lua_string(s, out),
        Value::Array(items) => {
            out.push('{');
            for item in items.iter().filter(|item| !item.is_null()) {
                lua_literal(item, out);
                out.push_str(", ");
            }
            out.push('}');
        }
        Value::Object(fields) => {
            out.push('{');
            for (key, field) in fields.iter().filter(|(_, field)| !field.is_null()) {
                out.push('[');
                lua_string(key, out);
                out.push_str("] = ");
                lua_literal(field, out);
                out.push_str(", ");
            }
            out.push('}');
        }
    }
}

/// Runs `script` with `lua5.4` (fed on stdin) and returns its stdout.
fn run_lua(script: &str) -> String {
    let mut child =
        match Command::new(LUA).arg("-").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                panic!("{LUA} is not installed (Debian package lua5.4): run scripts/test-deps.sh")
            }
            Err(e) => panic!("cannot start {LUA}: {e}"),
        };
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{LUA} failed ({}):\n{}\nscript:\n{script}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("lua printed UTF-8")
}

/// Runs `health_lua` the way Argo CD does (global `obj`, the chunk returns `hs`) and returns
/// `(hs.status, hs.message)`.
fn evaluate(health_lua: &Path, obj: &Value) -> (String, String) {
    let mut script = String::from("obj = ");
    lua_literal(obj, &mut script);
    script.push_str("\nlocal hs = dofile(");
    lua_string(health_lua.to_str().expect("UTF-8 path"), &mut script);
    script.push_str(concat!(
        ")\n",
        "assert(type(hs) == \"table\", \"health.lua returned \" .. type(hs) .. \", not a table\")\n",
        "assert(type(hs.status) == \"string\", \"hs.status is \" .. type(hs.status))\n",
        "assert(type(hs.message) == \"string\", \"hs.message is \" .. type(hs.message))\n",
        "io.write(hs.status, \"\\n\", hs.message)\n",
    ));
    let stdout = run_lua(&script);
    let (status, message) = stdout.split_once('\n').expect("status and message");
    (status.to_string(), message.to_string())
}

/// Argo CD's verdict on a live object (as the operator wrote it): `(status, message)` from
/// the kind's health.lua.
pub(crate) fn health_of(object: &Value) -> (String, String) {
    let kind = object["kind"].as_str().expect("an object with a kind");
    evaluate(&argocd_dir().join(kind).join("health.lua"), object)
}

/// Checks one case of `kind`'s health_test.yaml; `Err` describes the mismatch.
fn check_case(kind: &str, case: &HealthTest) -> Result<(), String> {
    let dir = argocd_dir().join(kind);
    let input = dir.join(&case.input_path);
    let obj: Value = read_yaml(&input);
    if obj["apiVersion"] != "inbound.dev/v1alpha1" || obj["kind"] != kind {
        return Err(format!(
            "{}: expected an inbound.dev/v1alpha1 {kind}, found {} {}",
            input.display(),
            obj["apiVersion"],
            obj["kind"]
        ));
    }
    let (status, message) = evaluate(&dir.join("health.lua"), &obj);
    let expected = &case.health_status;
    if status != expected.status || message != expected.message {
        return Err(format!(
            "{kind}/{}: health.lua returned\n    status: {status:?}, message: {message:?}\n  expected\n    status: \
             {:?}, message: {:?}",
            case.input_path, expected.status, expected.message
        ));
    }
    Ok(())
}

fn check_kind(kind: &str) {
    let cases = health_tests(kind);
    let failures: Vec<String> = cases.iter().filter_map(|case| check_case(kind, case).err()).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    println!("{kind}: {} health cases pass in {LUA}", cases.len());
}

#[test]
fn argocd_health_inbound_app() {
    check_kind("InboundApp");
}

#[test]
fn argocd_health_scope() {
    check_kind("Scope");
}

#[test]
fn argocd_health_client_grant() {
    check_kind("ClientGrant");
}

#[test]
fn argocd_health_consent_policy() {
    check_kind("ConsentPolicy");
}

/// A wrong expectation must be reported, for each status the scripts can return.
#[test]
fn argocd_health_detects_wrong_expectations() {
    for kind in KINDS {
        for case in health_tests(kind) {
            let mut wrong_status = case.clone();
            wrong_status.health_status.status = match case.health_status.status.as_str() {
                "Healthy" => "Degraded".into(),
                _ => "Healthy".into(),
            };
            assert!(check_case(kind, &wrong_status).is_err(), "{kind}/{}: a wrong status passed", case.input_path);
            let mut wrong_message = case.clone();
            wrong_message.health_status.message.push('.');
            assert!(check_case(kind, &wrong_message).is_err(), "{kind}/{}: a wrong message passed", case.input_path);
        }
    }
}

/// Every fixture under <Kind>/testdata is exercised by a case, and every kind covers the
/// three statuses.
#[test]
fn argocd_health_tests_cover_every_fixture_and_status() {
    for kind in KINDS {
        let cases = health_tests(kind);
        let used: BTreeSet<String> = cases.iter().map(|case| case.input_path.clone()).collect();
        let dir = argocd_dir().join(kind).join("testdata");
        let present: BTreeSet<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| format!("testdata/{}", entry.unwrap().file_name().to_string_lossy()))
            .collect();
        assert_eq!(used, present, "{kind}: health_test.yaml and testdata/ list different files");
        let statuses: BTreeSet<&str> = cases.iter().map(|case| case.health_status.status.as_str()).collect();
        assert_eq!(statuses, BTreeSet::from(["Degraded", "Healthy", "Progressing"]), "{kind}: statuses covered");
    }
}

/// One logic for every kind: the per-kind scripts are copies of each other.
#[test]
fn argocd_health_scripts_are_identical() {
    let reference = read(&argocd_dir().join("InboundApp/health.lua"));
    for kind in KINDS {
        assert!(
            read(&argocd_dir().join(kind).join("health.lua")) == reference,
            "config/argocd/{kind}/health.lua differs from config/argocd/InboundApp/health.lua"
        );
    }
}

/// The ready-to-apply argocd-cm patch embeds exactly the current scripts, one key per kind.
#[test]
fn argocd_cm_patch_embeds_each_script() {
    let patch: Value = read_yaml(&argocd_dir().join(PATCH));
    assert_eq!(patch["kind"], "ConfigMap");
    assert_eq!(patch["metadata"]["name"], "argocd-cm");
    let data = patch["data"].as_object().expect("argocd-cm patch has data");
    let expected_keys: BTreeSet<String> =
        KINDS.iter().map(|kind| format!("resource.customizations.health.inbound.dev_{kind}")).collect();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), expected_keys, "keys of {PATCH}");
    for kind in KINDS {
        let key = format!("resource.customizations.health.inbound.dev_{kind}");
        let script = read(&argocd_dir().join(kind).join("health.lua"));
        assert!(
            data[&key].as_str() == Some(script.as_str()),
            "config/argocd/{PATCH}: {key} is not config/argocd/{kind}/health.lua verbatim; regenerate it with \
             config/argocd/gen-argocd-cm-patch.sh"
        );
    }
}

/// The Lua literal writer, checked by the interpreter itself: escapes, nesting, skipped
/// nulls, integers and floats.
#[test]
fn argocd_lua_literal_is_read_back_exactly() {
    let tricky = "quote \" backslash \\ newline \n cr \r tab \t nul \u{0} bell \u{7} del \u{7f} digit after \
                  escape \u{1}9 é ≤ 😀 ]] [[ --";
    let value = json!({
        "s": tricky,
        "gone": null,
        "list": [1, null, "two", [true, false], {}, {"deep": {"er": -3}}],
        "float": 1.5,
        "wholeFloat": 2.0,
        "big": 9_007_199_254_740_993_i64,
        "key with \"quotes\"\nand newline": "k",
        "app.kubernetes.io/name": "inbound",
    });
    let mut script = String::from("obj = ");
    lua_literal(&value, &mut script);
    script.push_str(concat!(
        "\nlocal out = {\n",
        "  obj.s, tostring(obj.gone), tostring(#obj.list), tostring(obj.list[1]), obj.list[2],\n",
        "  tostring(obj.list[3][1]), tostring(obj.list[3][2]), tostring(next(obj.list[4])),\n",
        "  tostring(obj.list[5].deep.er), math.type(obj.list[1]), tostring(obj.float), math.type(obj.wholeFloat),\n",
        "  tostring(obj.big), math.type(obj.big), obj[\"key with \\\"quotes\\\"\\nand newline\"],\n",
        "  obj[\"app.kubernetes.io/name\"],\n",
        "}\n",
        "local keys = 0\n",
        "for _ in pairs(obj) do keys = keys + 1 end\n",
        "out[#out + 1] = tostring(keys)\n",
        "io.write(table.concat(out, \"\\30\"))\n",
    ));
    let stdout = run_lua(&script);
    let got: Vec<&str> = stdout.split('\u{1e}').collect();
    let expected = vec![
        tricky,
        "nil",
        "5",
        "1",
        "two",
        "true",
        "false",
        "nil",
        "-3",
        "integer",
        "1.5",
        "float",
        "9007199254740993",
        "integer",
        "k",
        "inbound",
        "7",
    ];
    assert_eq!(got, expected);
}
