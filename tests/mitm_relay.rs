//! Reference client → `mitm` relay → reference server, over loopback:
//! the passive checks on a buffered and a streamed call, and every active
//! attack with its verdict asserted on both ends.

use std::collections::BTreeSet;

use osc_harness::client::{exit, CallOutcome, Channel, ClientError};
use osc_harness::mitm::{self, Attack, Conclusion, MitmConfig, RunningMitm};
use osc_harness::protocol::encoding::b64url_encode;
use osc_harness::protocol::wire::InnerRequest;
use osc_harness::server::{self, RunningServer, ServerConfig};
use osc_harness::transport::{self, Limits, OuterRequest, Target};

async fn server() -> RunningServer {
    let mut config = ServerConfig::generated();
    config.handshake_rate = None;
    server::spawn(config).await.expect("server starts")
}

async fn relay(server: &RunningServer, attacks: &[Attack], key: bool) -> RunningMitm {
    mitm::spawn(MitmConfig {
        tls: None,
        listen: ([127, 0, 0, 1], 0).into(),
        upstream: Target::parse(&server.url).unwrap(),
        attacks: attacks.iter().copied().collect::<BTreeSet<_>>(),
        canaries: vec![server.access_key.clone(), "a secret prompt".into()],
        agent_id: server.agent_id.clone(),
        plaintext_key: key.then(|| server.access_key.clone()),
        limits: Limits::default(),
        log: None,
    })
    .await
    .expect("relay starts")
}

fn inner(server: &RunningServer, stream: bool) -> InnerRequest {
    if stream {
        InnerRequest {
            method: "POST".into(),
            path: format!("/agents/{}/dispatch", server.agent_id),
            authorization: Some(format!("Bearer {}", server.access_key)),
            accept: Some("text/event-stream".into()),
            content_type: Some("application/json".into()),
            body: Some(b64url_encode(br#"{"events":3,"note":"a secret prompt"}"#)),
            ..Default::default()
        }
    } else {
        InnerRequest {
            method: "GET".into(),
            path: "/health".into(),
            authorization: Some(format!("Bearer {}", server.access_key)),
            ..Default::default()
        }
    }
}

async fn call_through(
    server: &RunningServer,
    relay: &RunningMitm,
    stream: bool,
) -> Result<CallOutcome, ClientError> {
    let target = Target::parse(&relay.url).unwrap();
    let mut channel = Channel::new(target, server.agent_address, Limits::default());
    channel.call(inner(server, stream)).await
}

#[tokio::test]
async fn passive_buffered_and_streamed_calls_hold_and_no_canary_crosses() {
    let server = server().await;
    for stream in [false, true] {
        let relay = relay(&server, &[], false).await;
        let outcome = call_through(&server, &relay, stream)
            .await
            .expect("call completes");
        assert_eq!(outcome.inner_status, 200);
        assert_eq!(outcome.streamed, stream);
        let seen = relay.observed();
        assert_eq!((seen.handshakes, seen.calls), (1, 1));
        assert!(seen.problems.is_empty(), "{:?}", seen.problems);
        assert!(seen.canary_hits.is_empty(), "{:?}", seen.canary_hits);
        assert!(seen.bytes_down > 0 && seen.bytes_up > 0);
        assert_eq!(relay.assessment().outcome, Conclusion::Held);
    }
}

#[tokio::test]
async fn canary_in_plaintext_traffic_is_reported() {
    let server = server().await;
    let relay = relay(&server, &[], false).await;
    let target = Target::parse(&relay.url).unwrap();
    let request = OuterRequest::get("/health")
        .with_header("Authorization", format!("Bearer {}", server.access_key));
    let response = transport::send(&target, &request, &Limits::default())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let seen = relay.observed();
    assert_eq!(seen.plaintext_requests, 1);
    assert_eq!(
        seen.canary_hits,
        vec!["canary #1 seen client to server".to_string()]
    );
    assert_eq!(relay.assessment().outcome, Conclusion::Broken);
}

#[tokio::test]
async fn log_file_holds_sizes_and_timing_only() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mitm.jsonl");
    let relay = mitm::spawn(MitmConfig {
        tls: None,
        listen: ([127, 0, 0, 1], 0).into(),
        upstream: Target::parse(&server.url).unwrap(),
        attacks: BTreeSet::new(),
        canaries: vec![],
        agent_id: server.agent_id.clone(),
        plaintext_key: None,
        limits: Limits::default(),
        log: Some(log.clone()),
    })
    .await
    .unwrap();
    call_through(&server, &relay, true)
        .await
        .expect("call completes");
    relay.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["route"], "/secure/session");
    assert_eq!(lines[1]["route"], "/secure/call");
    assert_eq!(lines[1]["streamed"], true);
    assert!(lines[1]["response_bytes"].as_u64().unwrap() > 0);
    assert!(!text.contains(&server.access_key) && !text.contains("\"ct\""));
}

#[tokio::test]
async fn replay_is_refused_with_409_and_the_client_sees_one_execution() {
    let server = server().await;
    let relay = relay(&server, &[Attack::Replay], false).await;
    let outcome = call_through(&server, &relay, false)
        .await
        .expect("the client's call completes");
    assert_eq!(outcome.inner_status, 200);
    // The replay is sent after the response is pumped; wait for it.
    for _ in 0..50 {
        if !relay.observed().replay_statuses.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(relay.observed().replay_statuses, vec![409]);
    assert_eq!(relay.assessment().outcome, Conclusion::Held);
}

#[tokio::test]
async fn stream_attacks_are_detected_by_the_client() {
    let server = server().await;
    let cases = [
        (Attack::DropFin, exit::TRUNCATED),
        (Attack::CutMidFrame, exit::TRUNCATED),
        (Attack::Reorder, exit::PROTOCOL),
        (Attack::Duplicate, exit::PROTOCOL),
    ];
    for (attack, code) in cases {
        let relay = relay(&server, &[attack], false).await;
        let err = call_through(&server, &relay, true)
            .await
            .expect_err(&format!("{attack}: the client must refuse"));
        assert_eq!(err.exit_code(), code, "{attack}: {err}");
        assert_eq!(
            relay.assessment().outcome,
            Conclusion::ClientMustTell,
            "{attack}: only the client can tell"
        );
    }
}

#[tokio::test]
async fn buffered_drop_fin_and_cut_are_detected_by_the_client() {
    let server = server().await;
    for attack in [Attack::DropFin, Attack::CutMidFrame] {
        let relay = relay(&server, &[attack], false).await;
        let err = call_through(&server, &relay, false)
            .await
            .expect_err(&format!("{attack}: the client must refuse"));
        assert_ne!(err.exit_code(), exit::OK, "{attack}");
        assert_ne!(err.exit_code(), exit::TRANSPORT, "{attack}: {err}");
    }
}

#[tokio::test]
async fn swapped_server_key_is_refused_before_any_call() {
    let server = server().await;
    let relay = relay(&server, &[Attack::SwapServerKey], false).await;
    let err = call_through(&server, &relay, false)
        .await
        .expect_err("identity mismatch");
    assert_eq!(err.exit_code(), exit::IDENTITY_MISMATCH, "{err}");
    let seen = relay.observed();
    assert_eq!((seen.tampered_hellos, seen.calls), (1, 0));
    assert_eq!(relay.assessment().outcome, Conclusion::Held);
}

#[tokio::test]
async fn plaintext_downgrade_gets_426_and_nothing_executes() {
    let server = server().await;
    let relay = relay(&server, &[Attack::Plaintext], true).await;
    let before = server.executions();
    let err = call_through(&server, &relay, false)
        .await
        .expect_err("the client gets no sealed answer");
    assert_ne!(err.exit_code(), exit::OK);
    assert_eq!(relay.observed().plaintext_statuses, vec![426]);
    assert_eq!(server.executions(), before);
    assert_eq!(relay.assessment().outcome, Conclusion::Held);
}

#[tokio::test]
async fn stripped_relay_marker_leaves_the_channel_intact() {
    let server = server().await;
    let relay = relay(&server, &[Attack::StripMarker], false).await;
    let outcome = call_through(&server, &relay, true)
        .await
        .expect("sealed call still works");
    assert_eq!(outcome.inner_status, 200);
    let seen = relay.observed();
    assert!(seen.canary_hits.is_empty(), "{:?}", seen.canary_hits);
    assert_eq!(relay.assessment().outcome, Conclusion::Held);
}

#[tokio::test]
async fn signature_reencodings_reach_the_client_and_are_judged_by_it() {
    use osc_harness::protocol::handshake::ClientHandshake;
    use osc_harness::protocol::wire::ServerHello;
    let server = server().await;
    for (attack, v_bytes) in [
        (Attack::SigV01, ["00", "01"]),
        (Attack::SigHighS, ["1b", "1c"]),
    ] {
        let relay = relay(&server, &[attack], false).await;
        let hello = ClientHandshake::new(server.agent_address, [7; 32], [9; 16])
            .hello()
            .to_json();
        let target = Target::parse(&relay.url).unwrap();
        let response = transport::send(
            &target,
            &OuterRequest::post_json("/secure/session", hello),
            &Limits::default(),
        )
        .await
        .unwrap();
        let sig = ServerHello::parse(&response.body).unwrap().signature;
        assert!(v_bytes.contains(&&sig[sig.len() - 2..]), "{attack}: {sig}");
        if attack == Attack::SigHighS {
            // s is above n/2, so its first byte is at least 0x7f.
            let s_first = u8::from_str_radix(&sig[66..68], 16).unwrap();
            assert!(s_first >= 0x7f, "{sig}");
        }
    }
    // The reference client accepts the high-S twin, as the upstream client does.
    let relay = relay(&server, &[Attack::SigHighS], false).await;
    call_through(&server, &relay, false)
        .await
        .expect("high-S is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mitm_command_between_real_processes_prints_a_summary() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    const EXE: &str = env!("CARGO_BIN_EXE_osc-harness");
    let server = server().await;
    let mut mitm = Command::new(EXE)
        .args(["mitm", "--listen", "127.0.0.1:0", "--upstream", &server.url])
        .args(["--canary", &server.access_key, "--duration", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(mitm.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let url = ready["url"].as_str().unwrap().to_string();
    let (address, key) = (
        server.agent_address.to_checksum(),
        server.access_key.clone(),
    );
    let status = tokio::task::spawn_blocking(move || {
        Command::new(EXE)
            .args([
                "call",
                "--target",
                &url,
                "--agent-address",
                &address,
                "--access-key",
                &key,
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());
    let mut summary = String::new();
    out.read_to_string(&mut summary).unwrap();
    assert!(mitm.wait().unwrap().success(), "{summary}");
    assert!(summary.contains("1 handshake(s), 1 call(s)"), "{summary}");
    assert!(
        summary.contains("canaries: none crossed in plaintext"),
        "{summary}"
    );
    assert!(summary.contains("verdict: the protocol held"), "{summary}");
}

#[tokio::test]
async fn a_relay_that_saw_no_traffic_is_inconclusive() {
    let server = server().await;
    for attacks in [&[][..], &[Attack::Replay][..]] {
        let relay = relay(&server, attacks, false).await;
        let judged = relay.assessment();
        assert!(
            matches!(&judged.outcome, Conclusion::Inconclusive(why) if why.contains("no traffic")),
            "{attacks:?}: {judged:?}"
        );
        assert_eq!(judged.outcome.exit_code(), 3);
    }
}

#[tokio::test]
async fn an_attack_with_nothing_to_act_on_is_inconclusive_not_a_break() {
    // A handshake crosses the relay but no call does: nothing was replayed.
    let server = server().await;
    let relay = relay(&server, &[Attack::Replay], false).await;
    let target = Target::parse(&relay.url).unwrap();
    let mut channel = Channel::new(target, server.agent_address, Limits::default());
    channel.handshake().await.expect("the handshake completes");
    let judged = relay.assessment();
    assert!(
        matches!(&judged.outcome, Conclusion::Inconclusive(why) if why.contains("no call")),
        "{judged:?}"
    );
}

#[tokio::test]
async fn reorder_and_duplicate_are_not_applicable_to_buffered_answers() {
    let server = server().await;
    for attack in [Attack::Reorder, Attack::Duplicate] {
        let relay = relay(&server, &[attack], false).await;
        let outcome = call_through(&server, &relay, false)
            .await
            .expect("a buffered answer passes unchanged");
        assert_eq!(outcome.inner_status, 200);
        let judged = relay.assessment();
        assert!(
            matches!(&judged.outcome, Conclusion::NotApplicable(why) if why.contains("buffered")),
            "{attack}: {judged:?}"
        );
        assert_eq!(judged.outcome.exit_code(), 3);
        let log = relay.http_log(std::time::Duration::from_secs(2)).await;
        assert!(
            log.iter()
                .filter_map(|x| x.note.as_deref())
                .any(|n| n.contains("not applicable to a buffered answer")),
            "{attack}: {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mitm_command_with_no_traffic_says_inconclusive_and_exits_3() {
    let server = server().await;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_osc-harness"))
            .args(["mitm", "--listen", "127.0.0.1:0", "--upstream", &server.url])
            .args(["--attack", "reorder", "--duration", "1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("verdict: inconclusive"), "{stdout}");
    assert!(!stdout.contains("the protocol held"), "{stdout}");
}
