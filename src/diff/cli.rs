//! `osc-harness diff`: the same inputs to several implementations, their
//! answers compared in normal form and the differences classified.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::netfuzz::case::{Finding as SavedCase, Signature, Step};
use crate::netfuzz::exec::HandshakeBudget;
use crate::netfuzz::gen::{Endpoints, Generator};
use crate::netfuzz::shrink::{self, Shrinker};
use crate::scenarios::loader;
use crate::scenarios::registry::Registry;
use crate::scenarios::runner::select;

use super::report::{render_json, render_junit, render_text, DiffReport, DIFF_SCHEMA_ID};
use super::run::{self, case_row, divergence_key, scenario_row, Class, Prepared, Row};
use super::targets;

/// Report formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Terminal text.
    Text,
    /// JSON (schema `osc-harness/diff-report/v1`).
    Json,
    /// JUnit XML.
    Junit,
    /// One self-contained HTML page: requirements × targets and inputs ×
    /// targets with the diverging cells standing out.
    Html,
}

/// Arguments of `diff`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
The --targets file holds one [[target]] table per implementation:

  [[target]]
  name = \"reference\"
  url = \"self\"                      # the reference server, in-process

  [[target]]
  name = \"python\"
  url = \"http://127.0.0.1:8080\"
  agent_address = \"0x…\"
  access_key = \"osk-v1.…\"
  agent_id = \"my-agent\"             # optional, as --agent-id
  relay_origin = true               # optional, as --relay-origin
  handshake_budget = \"none\"         # optional, N/SECS (default 5/60 for a URL)
  ca_cert = \"ca.pem\"                # optional, as --ca-cert (relative to this file)

--format html (or a --report file ending in .html) writes one self-contained
page: requirements x targets, and inputs x targets with the diverging cells
outlined.

Classes: must / should (a target breaks that requirement), information
(SPEC allows either answer: an UPSTREAM scenario or a rule of docs/DIFF.md),
unexplained (the normal forms differ and no rule covers it).

Exit codes: 0 no MUST broken and nothing unexplained; 1 a MUST broken or an
unexplained difference; 2 usage error; 3 a target is unreachable.")]
pub struct DiffArgs {
    /// The implementations to compare (TOML, two or more [[target]] tables).
    #[arg(long, value_name = "FILE")]
    pub targets: PathBuf,
    /// The seed of the fuzz cases (the same seed sends the same inputs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fuzz cases sent to every target after the scenarios.
    #[arg(long, default_value_t = 50, conflicts_with = "duration")]
    pub cases: u64,
    /// Send fuzz cases until this much time has passed (`90s`, `10m`)
    /// instead of a fixed count.
    #[arg(long)]
    pub duration: Option<String>,
    /// Run only scenarios matching (ID, category or requirement; `*` globs;
    /// repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Skip scenarios matching (repeatable).
    #[arg(long)]
    pub skip: Vec<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
    /// Also write a report file (format from the extension: .json, .xml,
    /// else text; repeatable).
    #[arg(long)]
    pub report: Vec<PathBuf>,
    /// Where minimised diverging fuzz cases are saved (for `replay --targets`).
    #[arg(long, default_value = "diff-findings")]
    pub save: PathBuf,
    /// Show every row with each target's normal form.
    #[arg(long)]
    pub verbose: bool,
    /// The longest wait, in seconds, for a session to expire, in scenarios
    /// and fuzz cases alike; on a target whose sessions live longer, those
    /// inputs are not run (the row is `uncompared` and says why).
    #[arg(long, default_value_t = 10)]
    pub max_wait: u64,
}

/// Resolves every target in file order; a usage exit for a bad table, 3
/// for a target that does not answer (`command` names the command in the
/// message).
async fn prepare_all(
    specs: &[targets::TargetSpec],
    command: &str,
    max_wait: Duration,
) -> Result<Vec<Prepared>, ExitCode> {
    let mut prepared = Vec::new();
    for spec in specs {
        match run::prepare(spec, max_wait).await {
            Ok(p) => prepared.push(p),
            Err(e @ run::PrepareError::Usage { .. }) => return Err(usage(e)),
            Err(e) => {
                eprintln!("osc-harness {command}: {e}");
                return Err(ExitCode::from(3));
            }
        }
    }
    Ok(prepared)
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("osc-harness diff: {msg}");
    ExitCode::from(2)
}

/// Diverging fuzz cases minimised per run; the rest are reported unshrunk.
const MAX_SHRUNK: usize = 5;

/// Fuzz cases run at once on every target.
const CASE_BATCH: u64 = 10;

/// Runs `diff`.
pub fn run(args: DiffArgs) -> ExitCode {
    let specs = match targets::load(&args.targets) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let registry = Registry::builtin();
    let all = match loader::load(None, &registry) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let scenarios = select(all, &args.only, &args.skip);
    let duration = match args
        .duration
        .as_deref()
        .map(crate::server::parse_duration_secs)
    {
        Some(Ok(s)) => Some(Duration::from_secs(s.max(0) as u64)),
        Some(Err(e)) => return usage(format!("--duration: {e}")),
        None => None,
    };
    if scenarios.is_empty() && args.cases == 0 && duration.is_none() {
        return usage("no scenario matched --only/--skip and --cases is 0: nothing to compare");
    }
    let rt = match crate::runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(e),
    };
    rt.block_on(async move {
        let prepared = match prepare_all(&specs, "diff", Duration::from_secs(args.max_wait)).await {
            Ok(p) => p,
            Err(code) => return code,
        };
        let names: Vec<String> = prepared.iter().map(|p| p.name.clone()).collect();
        let reports = run::run_scenarios(&prepared, &scenarios, &registry).await;
        let mut rows: Vec<Row> = run::preflight_row(&prepared, &registry)
            .into_iter()
            .collect();
        rows.extend(scenarios.iter().map(|s| scenario_row(s, &names, &reports)));
        rows.extend(fuzz_rows(&args, duration, &prepared).await);
        for p in prepared {
            if let Some(server) = p.server {
                server.shutdown().await;
            }
        }
        let report = DiffReport {
            schema: DIFF_SCHEMA_ID,
            targets: names,
            seed: args.seed,
            rows,
        };
        if let Err(e) = write_reports(&report, &args) {
            return usage(e);
        }
        ExitCode::from(report.exit_code())
    })
}

async fn fuzz_rows(args: &DiffArgs, duration: Option<Duration>, targets: &[Prepared]) -> Vec<Row> {
    let budgets: Vec<Mutex<HandshakeBudget>> = targets
        .iter()
        .map(|t| Mutex::new(HandshakeBudget::new(t.info.target.handshake_budget)))
        .collect();
    let budgets = &budgets;
    let endpoints = Endpoints {
        session: true,
        call: true,
        plaintext: true,
    };
    let thrifty = targets
        .iter()
        .any(|t| t.info.target.handshake_budget.is_some());
    let mut gen = Generator::new(args.seed, 0, endpoints).thrifty(thrifty);
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut shrunk = 0usize;
    let mut seen_keys = std::collections::BTreeSet::new();
    let mut next = 0u64;
    loop {
        // Cases are generated in order, so a seed sends the same cases
        // whatever the batching; a batch runs at once, because a target
        // may fairly wait seconds for the bytes a case promised and never
        // sent, and those waits should overlap rather than add up.
        let batch_len = match duration {
            Some(d) if start.elapsed() >= d => 0,
            Some(_) => CASE_BATCH,
            None => CASE_BATCH.min(args.cases.saturating_sub(next)),
        };
        if batch_len == 0 {
            break;
        }
        let batch: Vec<(u64, Vec<Step>)> = (next..next + batch_len)
            .map(|case| (case, gen.case()))
            .collect();
        next += batch_len;
        let batch_rows = run::join_all(batch.iter().map(|(case, steps)| {
            case_row(format!("case-{case}"), steps, args.seed, targets, budgets)
        }))
        .await;
        for ((case, _), mut row) in batch.into_iter().zip(batch_rows) {
            let diverges = row.cells.iter().any(|c| c.verdict != row.cells[0].verdict)
                || row.class == Class::Unexplained;
            let key = divergence_key(&row);
            if diverges && !key.is_empty() && shrunk < MAX_SHRUNK && seen_keys.insert(key.clone()) {
                shrunk += 1;
                let best = minimise(&row, &key, args.seed, targets, budgets).await;
                match save(&args.save, &args.targets, args.seed, case, &key, best) {
                    Ok(path) => row.saved = Some(path.display().to_string()),
                    Err(e) => eprintln!("osc-harness diff: {e}"),
                }
            }
            rows.push(row);
        }
    }
    rows
}

/// Shrinks a diverging case like a fuzzer finding: smaller versions are
/// kept while they still diverge the same way (one fresh session per
/// target per try).
async fn minimise(
    row: &Row,
    key: &str,
    seed: u64,
    targets: &[Prepared],
    budgets: &[Mutex<HandshakeBudget>],
) -> Vec<Step> {
    let steps = row.steps.clone().unwrap_or_default();
    if row
        .findings
        .iter()
        .any(|f| f.detail.starts_with("timeout/"))
    {
        // Each try would cost a full timeout; the input is small anyway.
        return steps;
    }
    let mut shrinker = Shrinker::new(steps, shrink::MAX_TRIES);
    while let Some(candidate) = shrinker.next_candidate() {
        let again = case_row(String::new(), &candidate, seed, targets, budgets).await;
        shrinker.record(divergence_key(&again) == key);
    }
    shrinker.into_best()
}

/// Saves a case in the fuzzer's finding format, so `replay` loads it; the
/// divergence it showed is kept in `notes`.
fn save(
    dir: &Path,
    targets_file: &Path,
    seed: u64,
    case: u64,
    key: &str,
    steps: Vec<Step>,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let hash = crate::netfuzz::dedup::stable_hash(key);
    let path = dir.join(format!("diff-{hash:016x}.json"));
    let finding = SavedCase {
        signature: Signature {
            oracle: "divergence".into(),
            layer: "diff".into(),
            field: key.into(),
        },
        detail: key.into(),
        seed,
        case,
        count: 1,
        steps,
        exchanges: Vec::new(),
        target: targets_file.display().to_string(),
        notes: [("divergence".to_string(), key.to_string())].into(),
        shape: None,
        requirement: None,
        level: None,
    };
    let text = serde_json::to_string_pretty(&finding).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn render(report: &DiffReport, format: DiffFormat, verbose: bool) -> String {
    match format {
        DiffFormat::Json => render_json(report),
        DiffFormat::Junit => render_junit(report),
        DiffFormat::Text => render_text(report, verbose),
        DiffFormat::Html => {
            super::html::render_diff_html(report, &crate::report::Catalogue::builtin(), verbose)
        }
    }
}

fn write_reports(report: &DiffReport, args: &DiffArgs) -> Result<(), String> {
    print!("{}", render(report, args.format, args.verbose));
    for path in &args.report {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => DiffFormat::Json,
            Some("xml") => DiffFormat::Junit,
            Some("html" | "htm") => DiffFormat::Html,
            _ if args.format == DiffFormat::Html => DiffFormat::Html,
            _ => DiffFormat::Text,
        };
        std::fs::write(path, render(report, format, true))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `replay FINDING --to-scenario FILE`: the finding's scenario (its steps
/// with the oracles' expectations) written through the scenario model's
/// serde form, so the file loads back to those steps.
fn write_scenario(finding: &std::path::Path, path: &std::path::Path) -> Result<(), String> {
    let finding = crate::netfuzz::runner::load_finding(finding).map_err(|e| e.to_string())?;
    let (scenario, comments) = finding_scenario(&finding);
    scenario.write(path, &comments).map_err(|e| e.to_string())
}

/// The scenario `replay --to-scenario` writes for `finding`, with the
/// comment lines that head its file: its steps with the oracles'
/// expectations, in the scenario model that loads back to those steps.
pub fn finding_scenario(finding: &SavedCase) -> (crate::scenarios::model::Scenario, Vec<String>) {
    let plan = crate::netfuzz::scenario::scenario(finding);
    let scenario = crate::scenarios::model::Scenario::of_edits(
        plan.id,
        plan.title,
        plan.category,
        plan.level,
        vec![plan.requirement],
        &plan.steps,
    );
    (scenario, plan.comments)
}

/// `replay CASE --targets FILE` as the dispatcher hands it over: loads the
/// case (or writes its scenario with `--to-scenario`, with or without
/// `--targets`), then [`replay`]s it on every target of the file.
pub fn run_replay_targets(args: crate::netfuzz::cli::ReplayArgs) -> ExitCode {
    if let Some(path) = &args.to_scenario {
        return match write_scenario(&args.finding, path) {
            Ok(()) => {
                println!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(file) = args.targets.clone() else {
        return crate::netfuzz::cli::run_replay(args);
    };
    if args.target.server.target.is_some() {
        eprintln!("error: --targets replaces --target");
        return ExitCode::from(2);
    }
    match crate::netfuzz::runner::load_finding(&args.finding) {
        Ok(finding) => replay(&finding, &file),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `replay --targets FILE`: runs a saved case on every target of the file
/// and says whether the divergence it was saved with remains. Exit 1 when
/// it does, 0 when it is gone, 2 on usage errors, 3 when a target is
/// unreachable.
pub fn replay(case: &SavedCase, targets_file: &Path) -> ExitCode {
    let specs = match targets::load(targets_file) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let rt = match crate::runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(e),
    };
    rt.block_on(async move {
        let prepared = match prepare_all(&specs, "replay", run::DEFAULT_MAX_WAIT).await {
            Ok(p) => p,
            Err(code) => return code,
        };
        let budgets: Vec<Mutex<HandshakeBudget>> = prepared
            .iter()
            .map(|t| Mutex::new(HandshakeBudget::new(t.info.target.handshake_budget)))
            .collect();
        let row = case_row("replay".into(), &case.steps, case.seed, &prepared, &budgets).await;
        let now = divergence_key(&row);
        let was = case
            .notes
            .get("divergence")
            .cloned()
            .unwrap_or_else(|| case.signature.to_string());
        for c in &row.cells {
            println!(
                "  {:<10} {} {}",
                c.target,
                c.verdict,
                c.normal.as_ref().map(|n| n.to_string()).unwrap_or_default()
            );
        }
        let code = if !now.is_empty() && now == was {
            println!("DIVERGENCE REMAINS: {now}");
            ExitCode::from(1)
        } else if now.is_empty() {
            println!("NO DIVERGENCE: every target agrees (was: {was})");
            ExitCode::SUCCESS
        } else {
            println!("DIVERGENCE CHANGED: now {now} (was: {was})");
            ExitCode::from(1)
        };
        for p in prepared {
            if let Some(server) = p.server {
                server.shutdown().await;
            }
        }
        code
    })
}
