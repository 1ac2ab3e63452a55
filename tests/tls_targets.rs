//! Every server-reaching command over real TLS on loopback: `serve
//! --tls-self-signed` (HTTP/1.1 and HTTP/2), a wrong CA, `--insecure`, and
//! a CONNECT proxy started here.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;
use support::{describe, harness, outcome, run, start, text, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `serve --tls-self-signed` with its CA in `dir`, the handshake limit off.
fn serve_tls(dir: &Path, name: &str, extra: &[&str]) -> Running {
    let mut cmd = harness();
    cmd.args(["serve", "--tls-self-signed", "--handshake-rate", "0"])
        .arg("--tls-ca-out")
        .arg(dir.join(name))
        .args(extra);
    start(cmd)
}

/// `command --target URL --agent-address … --access-key …` for `server`,
/// trusting `ca`.
fn command(verb: &str, server: &Running, ca: Option<&Path>) -> Command {
    let mut cmd = harness();
    cmd.arg(verb);
    target(&mut cmd, server, ca);
    cmd
}

fn target(cmd: &mut Command, server: &Running, ca: Option<&Path>) {
    cmd.args(["--target", &server.field("url")])
        .args(["--agent-address", &server.field("agentAddress")])
        .args(["--access-key", &server.field("accessKey")]);
    if let Some(ca) = ca {
        cmd.arg("--ca-cert").arg(ca);
    }
}

/// The whole suite as JSON; asserts exit 0 and no failure.
fn suite_passes(server: &Running, ca: &Path, extra: &[&str]) -> Value {
    let mut cmd = command("test", server, Some(ca));
    cmd.args(["--agent-id", &server.field("agentId")])
        .args(["--handshake-budget", "none", "--format", "json"])
        .args(extra);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = support::stdout_json(&out);
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    assert!(scenarios.iter().any(|s| s["verdict"] == "pass"));
    assert!(scenarios.iter().all(|s| s["verdict"] != "fail"), "{doc:#}");
    doc
}

/// `call` of the buffered `/health` and of a streamed dispatch.
fn calls_work(server: &Running, ca: Option<&Path>, extra: &[&str]) -> String {
    let mut cmd = command("call", server, ca);
    cmd.args(extra);
    let (code, out, err) = outcome(run(cmd));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"ok\""), "{out}");
    let mut cmd = command("call", server, ca);
    cmd.args([
        "--path",
        &format!("/agents/{}/dispatch", server.field("agentId")),
    ])
    .args(["--data", r#"{"events":3,"size":4}"#, "--stream"])
    .args(extra);
    let (code, out, err) = outcome(run(cmd));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
    err
}

/// A short fuzz run's summary; asserts no finding.
fn fuzz_clean(server: &Running, ca: &Path, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command("fuzz", server, Some(ca));
    cmd.args(["--duration", "3", "--handshake-budget", "0", "--quiet"])
        .args(["--relay-origin", "on"])
        .arg("--findings")
        .arg(dir.path())
        .args(extra);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let summary: Value = support::stdout_json(&out);
    assert!(summary["execs"].as_u64().unwrap_or(0) > 0, "{summary:#}");
    summary
}

#[test]
fn every_command_reaches_a_self_signed_https_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_tls(dir.path(), "ca.pem", &[]);
    let url = server.field("url");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = Path::new(&server.field("caCert")).to_path_buf();
    assert!(std::fs::read_to_string(&ca)
        .expect("caCert file")
        .contains("BEGIN CERTIFICATE"));

    suite_passes(&server, &ca, &[]);
    suite_passes(&server, &ca, &["--http1"]);
    calls_work(&server, Some(&ca), &[]);
    calls_work(&server, Some(&ca), &["--http2"]);
    fuzz_clean(&server, &ca, &[]);

    let mut cmd = command("bench", &server, Some(&ca));
    cmd.args(["--duration", "500ms", "--concurrency", "1"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let bench: Value = support::stdout_json(&out);
    assert_eq!(bench["tls"], true);
    for phase in ["handshakes", "buffered1KiB", "tlsConnect"] {
        assert!(
            bench["phases"][phase]["ops"].as_u64().unwrap_or(0) > 0,
            "{phase}: {bench:#}"
        );
    }
}

#[test]
fn a_finding_over_tls_replays_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_tls(dir.path(), "ca.pem", &["--bug", "inner-auth-unchecked"]);
    let ca = dir.path().join("ca.pem");
    let findings = dir.path().join("findings");
    let mut cmd = command("fuzz", &server, Some(&ca));
    cmd.args(["--duration", "5", "--handshake-budget", "0", "--quiet"])
        .args(["--relay-origin", "on"])
        .arg("--findings")
        .arg(&findings);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let file = std::fs::read_dir(&findings)
        .expect("findings dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a finding file");
    let mut cmd = harness();
    cmd.arg("replay").arg(&file);
    target(&mut cmd, &server, Some(&ca));
    cmd.args(["--relay-origin", "on"]);
    let (code, out, err) = outcome(run(cmd));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("STILL FAILING"),
        "{out}{err}"
    );
}

#[test]
fn a_wrong_ca_is_exit_3_and_insecure_warns_and_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_tls(dir.path(), "ca.pem", &[]);
    let other = serve_tls(dir.path(), "other.pem", &[]);
    let wrong = dir.path().join("other.pem");
    drop(other);

    let findings = dir.path().join("f").display().to_string();
    let cases: [(&str, Vec<&str>); 3] = [
        ("test", vec!["--handshake-budget", "none"]),
        ("bench", vec!["--duration", "200ms"]),
        (
            "fuzz",
            vec!["--duration", "2", "--quiet", "--findings", &findings],
        ),
    ];
    for (verb, extra) in cases {
        let mut cmd = command(verb, &server, Some(&wrong));
        cmd.args(extra);
        let (code, out, err) = outcome(run(cmd));
        assert_eq!(code, 3, "{verb}: {out}{err}");
        assert!(err.contains("unknown issuer"), "{verb}: {err}");
    }
    // call keeps its own codes: 7 is a transport failure.
    let (code, _, err) = outcome(run(command("call", &server, Some(&wrong))));
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("unknown issuer") && err.lines().count() == 1,
        "{err}"
    );

    let err = calls_work(&server, None, &["--insecure"]);
    assert!(err.contains("warning: --insecure"), "{err}");
    let mut cmd = command("test", &server, None);
    cmd.args([
        "--insecure",
        "--handshake-budget",
        "none",
        "--format",
        "json",
    ])
    .args(["--only", "replay-*"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = support::stdout_json(&out);
    assert_eq!(doc["insecure"], true, "{doc:#}");
    assert!(text(&out.stderr).contains("warning: --insecure"));
}

#[test]
fn an_http2_only_server_passes_and_raw_edits_say_they_did_not_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_tls(dir.path(), "ca.pem", &["--http2-only"]);
    let ca = dir.path().join("ca.pem");
    suite_passes(&server, &ca, &[]);
    suite_passes(&server, &ca, &["--http2"]);
    calls_work(&server, Some(&ca), &[]);
    // Raw HTTP/1.1 framing cannot reach an h2-only TLS server: those
    // steps are skipped, never judged.
    let summary = fuzz_clean(&server, &ca, &[]);
    assert!(
        summary["skipped"].as_u64().unwrap_or(0) > 0,
        "raw edits should be skipped: {summary:#}"
    );
    // Forcing HTTP/1.1 against it is a clear TLS failure.
    let mut cmd = command("call", &server, Some(&ca));
    cmd.arg("--http1");
    let (code, _, err) = outcome(run(cmd));
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("ALPN"), "{err}");
}

/// A CONNECT proxy on loopback that counts the tunnels it opened.
async fn connect_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(authority) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                else {
                    let _ = client.write_all(b"HTTP/1.1 405 No\r\n\r\n").await;
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(authority).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 No\r\n\r\n").await;
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (url, tunnels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_flag_and_https_proxy_tunnel_through_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_tls(dir.path(), "ca.pem", &[]);
    let ca = dir.path().join("ca.pem");
    let (proxy, tunnels) = connect_proxy().await;
    let server = Arc::new(server);

    let call = |env: Vec<(&'static str, String)>, extra: Vec<String>| {
        let (server, ca) = (server.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = command("call", &server, Some(&ca));
            cmd.env_remove("HTTPS_PROXY")
                .env_remove("https_proxy")
                .env_remove("NO_PROXY")
                .env_remove("no_proxy")
                .envs(env)
                .args(extra);
            outcome(run(cmd))
        })
    };
    let (code, out, err) = call(vec![], vec!["--proxy".into(), proxy.clone()])
        .await
        .expect("join");
    assert_eq!(code, 0, "{out}{err}");
    let after_flag = tunnels.load(Ordering::SeqCst);
    assert!(after_flag >= 1, "--proxy opened no tunnel");

    let (code, out, err) = call(vec![("HTTPS_PROXY", proxy.clone())], vec![])
        .await
        .expect("join");
    assert_eq!(code, 0, "{out}{err}");
    let after_env = tunnels.load(Ordering::SeqCst);
    assert!(after_env > after_flag, "HTTPS_PROXY opened no tunnel");

    let (code, out, err) = call(
        vec![
            ("HTTPS_PROXY", proxy.clone()),
            ("NO_PROXY", "localhost,127.0.0.1".into()),
        ],
        vec![],
    )
    .await
    .expect("join");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        tunnels.load(Ordering::SeqCst),
        after_env,
        "NO_PROXY was ignored"
    );
}

#[test]
fn via_relay_skips_the_loopback_scenario_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_tls(dir.path(), "ca.pem", &[]);
    let mut cmd = command("test", &server, Some(&dir.path().join("ca.pem")));
    cmd.args([
        "--via-relay",
        "--trusts-loopback",
        "--handshake-budget",
        "none",
    ])
    .args(["--only", "gate-loopback-plaintext", "--format", "json"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = support::stdout_json(&out);
    let scenario = &doc["scenarios"][0];
    assert_eq!(scenario["verdict"], "skip", "{doc:#}");
    assert!(
        scenario["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--via-relay")),
        "{doc:#}"
    );
}

/// `mitm --listen-tls-self-signed` in front of `upstream` (trusting
/// `upstream_ca`), with `extra` flags.
fn mitm_tls(dir: &Path, upstream: &Running, upstream_ca: &Path, extra: &[&str]) -> Running {
    let mut cmd = harness();
    cmd.args([
        "mitm",
        "--listen",
        "127.0.0.1:0",
        "--listen-tls-self-signed",
    ])
    .arg("--tls-ca-out")
    .arg(dir.join(format!("mitm-{}.pem", extra.join("-"))))
    .args(["--upstream", &upstream.field("url")])
    .arg("--ca-cert")
    .arg(upstream_ca)
    .args(["--agent-id", &upstream.field("agentId")])
    .args(extra);
    start(cmd)
}

#[test]
fn mitm_relays_tls_to_tls_with_its_checks_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_tls(dir.path(), "ca.pem", &[]);
    let server_ca = dir.path().join("ca.pem");

    let passive = mitm_tls(dir.path(), &server, &server_ca, &[]);
    assert!(passive.field("url").starts_with("https://"));
    let relay_ca = Path::new(&passive.field("caCert")).to_path_buf();
    let through = |relay: &Running| {
        let mut cmd = harness();
        cmd.arg("call")
            .args(["--target", &relay.field("url")])
            .args(["--agent-address", &server.field("agentAddress")])
            .args(["--access-key", &server.field("accessKey")])
            .arg("--ca-cert")
            .arg(Path::new(&relay.field("caCert")));
        outcome(run(cmd))
    };
    let (code, out, err) = through(&passive);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"ok\""), "{out}");
    // The relay's CA is not the server's: the client must name it.
    assert_ne!(
        std::fs::read(&relay_ca).expect("relay CA"),
        std::fs::read(&server_ca).expect("server CA")
    );

    // A key swapped in the ServerHello is still caught end to end.
    let attacking = mitm_tls(
        dir.path(),
        &server,
        &server_ca,
        &["--attack", "swap-server-key"],
    );
    let (code, out, err) = through(&attacking);
    assert_ne!(code, 0, "the swapped key went unnoticed: {out}{err}");
}

/// A self-signed certificate made the usual way (`openssl req -x509`,
/// which marks it CA) for `san`, written to `dir` as NAME.pem and
/// NAME.key; `None` when openssl is not installed.
fn openssl_self_signed(dir: &Path, name: &str, san: &str) -> Option<(String, String)> {
    let cert = dir.join(format!("{name}.pem")).display().to_string();
    let key = dir.join(format!("{name}.key")).display().to_string();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg(format!("subjectAltName={san}"))
        .args(["-keyout", &key, "-out", &cert])
        .output()
        .ok()?;
    assert!(out.status.success(), "{}", describe(&out));
    Some((cert, key))
}

#[test]
fn an_openssl_self_signed_certificate_given_with_ca_cert_is_trusted_for_its_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((cert, key)) = openssl_self_signed(dir.path(), "own", "DNS:localhost,IP:127.0.0.1")
    else {
        eprintln!("skipped: openssl is not installed");
        return;
    };
    let mut cmd = harness();
    cmd.args(["serve", "--handshake-rate", "0", "--tls-cert", &cert])
        .args(["--tls-key", &key]);
    let server = start(cmd);
    calls_work(&server, Some(Path::new(&cert)), &[]);

    // The same kind of certificate for another name is refused by name.
    let (other, other_key) =
        openssl_self_signed(dir.path(), "other", "DNS:other.example").expect("openssl");
    let mut cmd = harness();
    cmd.args(["serve", "--handshake-rate", "0", "--tls-cert", &other])
        .args(["--tls-key", &other_key]);
    let misnamed = start(cmd);
    let (code, _, err) = outcome(run(command("call", &misnamed, Some(Path::new(&other)))));
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("name mismatch"), "{err}");
}
