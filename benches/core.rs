//! What the protocol core costs: the full handshake, sealing and opening
//! calls of 1 KiB, 64 KiB and 1 MiB through the JSON envelope, and each raw
//! primitive alone. After criterion's report, two ratios measured in this
//! same run: handshake / sum of its primitives (target ≤ 1.3) and call
//! seal throughput at 64 KiB / raw AEAD throughput (target ≥ 0.8), and
//! the open throughput of a 64 KiB call's response frame through the
//! driver's reader (`peer::ResponseReader`) / raw AEAD (target ≥ 0.8).
//!
//! Run with `cargo bench --bench core`; docs/BENCHMARKS.md has figures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use criterion::{BenchmarkId, Criterion, Throughput};
use osc_harness::peer::ResponseReader;
use osc_harness::protocol::handshake::{
    respond, ClientHandshake, HonestServer, ServerHandshake, ServerHandshakeInputs,
};
use osc_harness::protocol::identity::{
    channel_digest, keccak256, recover_address, AgentIdentity, SignaturePolicy,
};
use osc_harness::protocol::keys::{derive_session_keys, nonce_for};
use osc_harness::protocol::session::{ClientSession, HonestCalls, ServerSession};
use osc_harness::protocol::wire::{CallRequest, Frame};
use osc_harness::rng::{RandomSource, SeededRandom};
use x25519_dalek::{PublicKey, StaticSecret};

const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];
/// The upstream vector's transcript is 229 bytes; the primitive benches
/// hash a payload of about that size.
const TRANSCRIPT_LEN: usize = 230;

/// Fixed inputs for one handshake, from a seed.
struct Inputs {
    identity: AgentIdentity,
    client_secret: [u8; 32],
    nonce: [u8; 16],
    server: ServerHandshakeInputs,
}

fn inputs() -> Inputs {
    let mut rng = SeededRandom::new(7, "bench");
    Inputs {
        identity: AgentIdentity::from_bytes(&rng.bytes()).expect("seeded key is valid"),
        client_secret: rng.bytes(),
        nonce: rng.bytes(),
        server: ServerHandshakeInputs {
            ephemeral_secret: rng.bytes(),
            sid: rng.bytes(),
            expires_at: 1_800_000_000,
        },
    }
}

/// Client hello, server response with signature, client verification
/// with recovery, and key derivation on both sides.
fn full_handshake(i: &Inputs) -> (ClientSession, ServerHandshake) {
    let client = ClientHandshake::new(i.identity.address(), i.client_secret, i.nonce);
    let server =
        respond(client.hello(), &i.identity, &i.server, &HonestServer).expect("honest handshake");
    let session = client.finish(&server.hello).expect("honest hello verifies");
    (session, server)
}

/// The two halves of a session from an honest handshake; calls use `now`
/// 0, well before its expiry.
fn sessions() -> (ClientSession, ServerSession) {
    let (client, server) = full_handshake(&inputs());
    (client, server.session)
}

/// The raw primitive: ChaCha20-Poly1305 in place, no allocation, no encoding.
fn raw_aead(cipher: &ChaCha20Poly1305, buffer: &mut [u8]) {
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::from(nonce_for(1)),
            b"osaurus-sc1:req:x:1",
            buffer.into(),
        )
        .expect("below the AEAD's length limit");
    black_box(tag);
}

/// A call sealed straight into the JSON body that goes on the wire.
fn seal_call_json(session: &mut ClientSession, plaintext: &[u8]) -> String {
    session
        .seal_call_json(plaintext, 0)
        .expect("session is live")
        .1
}

/// The same body through the [`CallRequest`] value (`ct` built, then copied).
fn seal_call_value(session: &mut ClientSession, plaintext: &[u8]) -> String {
    session
        .seal_call_bytes(plaintext, 0)
        .expect("session is live")
        .to_json()
}

/// A wire body parsed and opened by a fresh server session (a fresh replay
/// window each time, so the same body can be opened again).
fn open_call_json(server: &ServerSession, body: &str) -> usize {
    let call = CallRequest::parse(body.as_bytes()).expect("our own body parses");
    let mut server = server.clone();
    server
        .open_call(&call, 0, &HonestCalls)
        .expect("our own call opens")
        .plaintext
        .len()
}

/// A response frame of `plaintext`, as the server puts it on the wire for
/// call `seq` (one buffered frame, fin).
fn response_frame(server: &ServerSession, seq: u64, plaintext: &[u8]) -> Vec<u8> {
    server
        .response_sealer(seq)
        .seal_at(0, plaintext, true)
        .to_json()
        .into_bytes()
}

/// The frame read through the driver's reader, as a client reads its
/// answer: parse, decode, open, account.
fn open_response(client: &ClientSession, seq: u64, frame: &[u8]) -> usize {
    let mut reader = ResponseReader::new(client.sid(), client.keys(), seq).without_raw();
    let opened = reader.push(frame).plaintext.map_or(0, <[u8]>::len);
    assert!(reader.in_order(), "our own frame opens in order");
    opened
}

/// The same frame through the core's value types: `Frame::parse` (JSON
/// into a map, `ct` copied) and `ResponseOpener::open` (allocating decode
/// and open).
fn open_response_via_value(client: &ClientSession, seq: u64, frame: &[u8]) -> usize {
    let frame = Frame::parse(frame).expect("our own frame parses");
    client
        .response_opener(seq)
        .open(&frame)
        .expect("our own frame opens")
        .len()
}

struct Primitives {
    identity: AgentIdentity,
    secret: StaticSecret,
    peer: PublicKey,
    digest: [u8; 32],
    signature: [u8; 65],
    transcript: Vec<u8>,
    shared: [u8; 32],
}

fn primitives() -> Primitives {
    let i = inputs();
    let secret = StaticSecret::from(i.client_secret);
    let peer = PublicKey::from(&StaticSecret::from(i.server.ephemeral_secret));
    let transcript = vec![b'a'; TRANSCRIPT_LEN];
    let digest = channel_digest(&transcript);
    let signature = i.identity.sign_digest(&digest);
    Primitives {
        shared: secret.diffie_hellman(&peer).to_bytes(),
        identity: i.identity,
        secret,
        peer,
        digest,
        signature,
        transcript,
    }
}

fn x25519_public(p: &Primitives) -> PublicKey {
    PublicKey::from(&p.secret)
}
fn x25519_dh(p: &Primitives) -> [u8; 32] {
    p.secret.diffie_hellman(&p.peer).to_bytes()
}
fn sign(p: &Primitives) -> [u8; 65] {
    p.identity.sign_digest(&p.digest)
}
fn recover(p: &Primitives) -> bool {
    recover_address(&p.digest, &p.signature, SignaturePolicy::UPSTREAM).is_ok()
}
fn keccak(p: &Primitives) -> [u8; 32] {
    keccak256(&p.transcript)
}
fn hkdf(p: &Primitives) -> osc_harness::protocol::keys::SessionKeys {
    derive_session_keys(&p.shared, &p.transcript)
}

fn bench_handshake(c: &mut Criterion) {
    let i = inputs();
    c.bench_function("handshake/full", |b| {
        b.iter(|| full_handshake(black_box(&i)))
    });
}

fn bench_primitives(c: &mut Criterion) {
    let p = primitives();
    let mut g = c.benchmark_group("primitive");
    g.bench_function("x25519_public", |b| b.iter(|| x25519_public(black_box(&p))));
    g.bench_function("x25519_dh", |b| b.iter(|| x25519_dh(black_box(&p))));
    g.bench_function("secp256k1_sign", |b| b.iter(|| sign(black_box(&p))));
    g.bench_function("secp256k1_recover", |b| b.iter(|| recover(black_box(&p))));
    g.bench_function("keccak256_230B", |b| b.iter(|| keccak(black_box(&p))));
    g.bench_function("hkdf_session_keys", |b| b.iter(|| hkdf(black_box(&p))));
    g.finish();

    let cipher = ChaCha20Poly1305::new(&Key::from([3u8; 32]));
    let mut g = c.benchmark_group("primitive/chacha20poly1305");
    for (name, size) in SIZES {
        let mut buffer = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| raw_aead(&cipher, black_box(&mut buffer)))
        });
    }
    g.finish();
}

fn bench_calls(c: &mut Criterion) {
    let (mut client, server) = sessions();
    let mut g = c.benchmark_group("call");
    for (name, size) in SIZES {
        let plaintext = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter(|| seal_call_json(&mut client, black_box(&plaintext)))
        });
        g.bench_function(BenchmarkId::new("seal_via_value", name), |b| {
            b.iter(|| seal_call_value(&mut client, black_box(&plaintext)))
        });
        let body = seal_call_json(&mut client, &plaintext);
        g.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| open_call_json(&server, black_box(&body)))
        });
        let frame = response_frame(&server, 1, &plaintext);
        g.bench_function(BenchmarkId::new("open_response", name), |b| {
            b.iter(|| open_response(&client, 1, black_box(&frame)))
        });
    }
    g.finish();
}

/// The median wall time of each job over `rounds` rounds. Each round
/// runs every job once, in turn, so a burst of load from other processes
/// on this shared machine hits all of them alike and cancels in the ratios.
fn interleaved_medians(rounds: usize, jobs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    for _ in 0..rounds.div_ceil(10) {
        for job in jobs.iter_mut() {
            job();
        }
    }
    let mut times = vec![Vec::with_capacity(rounds); jobs.len()];
    for _ in 0..rounds {
        for (job, t) in jobs.iter_mut().zip(&mut times) {
            let start = Instant::now();
            job();
            t.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_unstable();
            t[t.len() / 2]
        })
        .collect()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The two ratios the issue asks for, timed here with plain medians
/// because criterion's own estimates are not exposed to the caller.
fn report_ratios() {
    const N: usize = 301;
    let i = inputs();
    let p = primitives();
    let hs = interleaved_medians(
        N,
        &mut [
            &mut || drop(black_box(full_handshake(&i))),
            &mut || _ = black_box(x25519_public(&p)),
            &mut || _ = black_box(x25519_dh(&p)),
            &mut || _ = black_box(sign(&p)),
            &mut || _ = black_box(recover(&p)),
            &mut || _ = black_box(keccak(&p)),
            &mut || _ = black_box(hkdf(&p)),
        ],
    );
    let handshake = hs[0];
    // How often the handshake performs each primitive.
    let parts = [
        ("x25519 public key", 2u32, hs[1]),
        ("x25519 DH", 2, hs[2]),
        ("secp256k1 sign", 1, hs[3]),
        ("secp256k1 recover", 1, hs[4]),
        ("keccak256 230 B", 2, hs[5]),
        ("HKDF session keys", 2, hs[6]),
    ];
    let sum: Duration = parts.iter().map(|(_, n, d)| *d * *n).sum();

    let size = 64 << 10;
    let plaintext = vec![0x5au8; size];
    let (mut client, _) = sessions();
    let (mut other, _) = sessions();
    let cipher = ChaCha20Poly1305::new(&Key::from([3u8; 32]));
    let mut buffer = plaintext.clone();
    let calls = interleaved_medians(
        N,
        &mut [
            &mut || drop(black_box(seal_call_json(&mut client, &plaintext))),
            &mut || drop(black_box(seal_call_value(&mut other, &plaintext))),
            &mut || raw_aead(&cipher, &mut buffer),
        ],
    );
    let (seal, via_value, aead) = (calls[0], calls[1], calls[2]);
    let mib_s = |d: Duration| size as f64 / d.as_secs_f64() / (1 << 20) as f64;

    println!();
    println!("== ratios (medians of {N} interleaved rounds, this process) ==");
    for (name, n, d) in &parts {
        println!("  {name:<20} {n} x {:>9.2} us", micros(*d));
    }
    println!("  {:<20}     {:>9.2} us", "sum of primitives", micros(sum));
    println!(
        "  {:<20}     {:>9.2} us",
        "full handshake",
        micros(handshake)
    );
    let hs_ratio = handshake.as_secs_f64() / sum.as_secs_f64();
    println!(
        "handshake / sum of primitives = {hs_ratio:.3} (target <= 1.3: {})",
        if hs_ratio <= 1.3 { "met" } else { "MISSED" }
    );
    println!(
        "  call seal 64 KiB     {:>9.2} us  {:>8.1} MiB/s",
        micros(seal),
        mib_s(seal)
    );
    println!(
        "  (via CallRequest)    {:>9.2} us  {:>8.1} MiB/s",
        micros(via_value),
        mib_s(via_value)
    );
    println!(
        "  raw AEAD 64 KiB      {:>9.2} us  {:>8.1} MiB/s",
        micros(aead),
        mib_s(aead)
    );
    let seal_ratio = aead.as_secs_f64() / seal.as_secs_f64();
    println!(
        "call seal throughput / raw AEAD throughput at 64 KiB = {seal_ratio:.3} (target >= 0.8: {})",
        if seal_ratio >= 0.8 { "met" } else { "MISSED" }
    );

    let (reader_client, reader_server) = sessions();
    let frame = response_frame(&reader_server, 1, &plaintext);
    let mut buffer = plaintext.clone();
    let opens = interleaved_medians(
        N,
        &mut [
            &mut || _ = black_box(open_response(&reader_client, 1, &frame)),
            &mut || _ = black_box(open_response_via_value(&reader_client, 1, &frame)),
            &mut || raw_aead(&cipher, &mut buffer),
        ],
    );
    let (reader_open, value_open, open_aead) = (opens[0], opens[1], opens[2]);
    println!(
        "  response open 64 KiB {:>9.2} us  {:>8.1} MiB/s",
        micros(reader_open),
        mib_s(reader_open)
    );
    println!(
        "  (via Frame + opener) {:>9.2} us  {:>8.1} MiB/s",
        micros(value_open),
        mib_s(value_open)
    );
    println!(
        "  raw AEAD 64 KiB      {:>9.2} us  {:>8.1} MiB/s",
        micros(open_aead),
        mib_s(open_aead)
    );
    let open_ratio = open_aead.as_secs_f64() / reader_open.as_secs_f64();
    println!(
        "response open throughput (reader) / raw AEAD throughput at 64 KiB = {open_ratio:.3} (target >= 0.8: {})",
        if open_ratio >= 0.8 { "met" } else { "MISSED" }
    );

    // Per-size medians, robust to the load spikes that blur criterion's
    // means on a shared machine.
    println!();
    println!("== calls by size (medians of 101 interleaved rounds) ==");
    println!("  size     seal (MiB/s)      open (MiB/s)      raw AEAD (MiB/s)");
    for (name, size) in SIZES {
        let plaintext = vec![0x5au8; size];
        let body = seal_call_json(&mut client, &plaintext);
        let server = sessions().1;
        let mut buffer = plaintext.clone();
        let m = interleaved_medians(
            101,
            &mut [
                &mut || drop(black_box(seal_call_json(&mut client, &plaintext))),
                &mut || _ = black_box(open_call_json(&server, &body)),
                &mut || raw_aead(&cipher, &mut buffer),
            ],
        );
        let rate = |d: Duration| size as f64 / d.as_secs_f64() / (1 << 20) as f64;
        println!(
            "  {name:<6} {:>9.1} us {:>6.0}  {:>9.1} us {:>6.0}  {:>9.1} us {:>6.0}",
            micros(m[0]),
            rate(m[0]),
            micros(m[1]),
            rate(m[1]),
            micros(m[2]),
            rate(m[2])
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    bench_handshake(&mut c);
    bench_primitives(&mut c);
    bench_calls(&mut c);
    c.final_summary();
    report_ratios();
}
