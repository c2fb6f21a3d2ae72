//! The `oncowatch` command as a user meets it: the replay contract (summary and rejects files, stdout kept
//! for alerts, exit codes) and configuration errors that name the key.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oncowatch"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("RUST_LOG");
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oncowatch-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn replay_writes_the_summary_and_rejects_contract() {
    let d = tmp("contract");
    let out = bin()
        .args(["replay", "examples/fhir", "--summary-json"])
        .arg(d.join("summary.json"))
        .arg("--rejects")
        .arg(d.join("rejects.ndjson"))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "stdout is reserved for alerts");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("summary.json")).expect("summary")).expect("json");
    let n = |p: &str| s.pointer(p).and_then(serde_json::Value::as_u64).unwrap_or_else(|| panic!("{p} missing"));
    let ignored: u64 = s["ignored"].as_object().expect("ignored").values().filter_map(|v| v.as_u64()).sum();
    let rejected: u64 = s["rejected"].as_object().expect("rejected").values().filter_map(|v| v.as_u64()).sum();
    assert_eq!(n("/resources"), n("/applied") + ignored + rejected);
    for key in [
        "unsupported_resource",
        "not_relevant",
        "duplicate",
        "stale_version",
        "status_excluded",
        "no_value",
        "unconvertible_unit",
        "subject_not_patient",
    ] {
        assert!(s["ignored"].get(key).is_some(), "ignored.{key} missing");
    }
    for key in ["invalid_json", "invalid_fhir", "no_patient", "no_event_time", "too_large", "too_deep"] {
        assert!(s["rejected"].get(key).is_some(), "rejected.{key} missing");
    }
    assert_eq!(n("/records"), 9);
    let rejects = std::fs::read_to_string(d.join("rejects.ndjson")).expect("rejects");
    let lines: Vec<serde_json::Value> = rejects.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len() as u64, rejected);
    for l in &lines {
        for k in ["source", "line", "entry", "resource_type", "reason", "message"] {
            assert!(l.get(k).is_some(), "rejects line lacks {k}: {l}");
        }
    }
    assert!(lines.iter().any(|l| l["reason"] == "invalid_fhir" && l["message"].as_str().is_some_and(|m| m.contains("effectiveDateTime"))));
}

#[test]
fn replay_reads_stdin_and_exits_non_zero_only_when_input_is_unreadable() {
    use std::io::Write;
    let mut child = bin()
        .args(["replay", "-", "--summary-json"])
        .arg(tmp("stdin").join("s.json"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"{\"resourceType\":\"Claim\"}\n\nnot json\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp("stdin").join("s.json")).expect("summary")).expect("json");
    assert_eq!(s["records"], 2, "blank lines are not records");
    assert_eq!(s["rejected"]["invalid_json"], 1);
    let missing = bin().args(["replay", "no/such/file.ndjson"]).output().expect("runs");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file.ndjson"));
}

#[test]
fn unknown_config_key_and_invalid_value_fail_naming_the_key() {
    let d = tmp("config");
    let f = d.join("bad.toml");
    std::fs::write(&f, "[input]\nmax_record_byts = 5\n").expect("write");
    let out = bin().arg("--config").arg(&f).arg("config").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_record_byts"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin().env("ONCOWATCH__INPUT__MAX_RECORD_BYTES", "lots").arg("config").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_record_bytes"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn config_dump_masks_the_pseudonym_key_and_env_overrides() {
    let out = bin()
        .env("ONCOWATCH__PRIVACY__PSEUDONYM_KEY", "s3cret-value")
        .env("ONCOWATCH__INPUT__MAX_RECORD_BYTES", "1234")
        .arg("config")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("s3cret-value"));
    assert!(text.contains("****"));
    assert!(text.contains("max_record_bytes = 1234"));
}

#[test]
fn json_logs_carry_no_patient_identifier() {
    let out = bin().args(["--log-format", "json", "replay", "examples/fhir"]).output().expect("runs");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replay finished"));
    for id in ["demo-1", "demo-2", "Synthetic", "5f6c2a4e"] {
        assert!(!err.contains(id), "log shows {id}");
    }
}

#[test]
fn run_refuses_the_development_pseudonym_key() {
    for key in [None, Some(oncowatch::core::identity::DEVELOPMENT_PSEUDONYM_KEY)] {
        let mut c = bin();
        c.env_remove("ONCOWATCH__PRIVACY__PSEUDONYM_KEY").arg("run");
        if let Some(k) = key {
            c.env("ONCOWATCH__PRIVACY__PSEUDONYM_KEY", k);
        }
        let out = c.output().expect("runs");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("development key"), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn demo_prints_alert_lines_and_a_summary() {
    let out = bin()
        .env("ONCOWATCH__HTTP__LISTEN", "127.0.0.1:0")
        .args(["demo", "--patients", "40", "--rate", "5000", "--duration", "90"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.is_empty(), "the demo raised no alert");
    for l in &lines {
        let tier = l.split_whitespace().nth(1).unwrap_or("");
        assert!(["watch", "high", "urgent"].contains(&tier), "alert line without a tier: {l}");
        assert!(l.contains("risk"), "{l}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("demo summary") && stderr.contains("true / false alerts"), "{stderr}");
}
