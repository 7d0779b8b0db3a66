//! Direct gRPC Check load: tollgate beside a tonic server that answers every Check with a
//! constant OK, and beside an OPA ext_authz server when one is built (benches/opa/).
//!
//! Every server runs as its own process on loopback; the generator (tonic, in this
//! process) holds a fixed number of Checks in flight over a few HTTP/2 connections for a
//! bounded time, alternating the servers run after run, and prints requests per second
//! and latency percentiles, then the medians. A rate-limited pass follows: each server
//! gets 80 % of tollgate's median maximum, open loop, latency counted from when each
//! request was due. `--memory` instead measures tollgate's RSS idle and with 100 000
//! distinct cached tokens.
//!
//! ```text
//! cargo bench --bench load                     # 3 alternating 10 s runs per server
//! cargo bench --bench load -- --smoke          # 1 s each: proves it works
//! cargo bench --bench load -- --memory         # RSS idle and with 100 000 cached tokens
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use dev_idp::{DevIdp, KeyAlg};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tokio::process::{Child, Command};
use tokio::time::MissedTickBehavior;
use tonic::transport::{Channel, Endpoint};

#[path = "../common/mod.rs"]
mod common;

/// Direct gRPC Check load against tollgate and its peers.
#[derive(Debug, Parser)]
struct Args {
    /// Seconds of each measured run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before each run's measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Runs per server, alternating servers.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Checks in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the Checks share (Envoy keeps one per worker).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Generator threads.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Servers to load, of tollgate, constant, opa.
    #[arg(long, value_delimiter = ',', default_value = "tollgate,constant,opa")]
    targets: Vec<String>,
    /// Rate-limited pass at this fraction of tollgate's maximum (0 skips it).
    #[arg(long, default_value_t = 0.8)]
    rate_fraction: f64,
    /// The target whose median maximum sets the rate of the rate-limited pass.
    #[arg(long, default_value = "tollgate")]
    rate_of: String,
    /// 1 s runs, one of each: proves the bench works, measures nothing.
    #[arg(long)]
    smoke: bool,
    /// Measure tollgate's memory instead: idle, and with `--tokens` cached tokens.
    #[arg(long)]
    memory: bool,
    /// Distinct tokens for `--memory`.
    #[arg(long, default_value_t = 100_000)]
    tokens: usize,
    /// The tollgate binary to run (default: this build's).
    #[arg(long, env = "TOLLGATE_BIN", default_value = env!("CARGO_BIN_EXE_tollgate"))]
    tollgate: PathBuf,
    /// Another tollgate build to run beside this one, as `NAME=PATH`; NAME then works as
    /// a target (for comparing a change before it lands).
    #[arg(long = "variant", value_parser = parse_variant)]
    variants: Vec<(String, PathBuf)>,
    /// Entries of the OPA peer's verified-token cache (`io_jwt`); 0 leaves it off, as
    /// OPA's server default does.
    #[arg(long, default_value_t = 0)]
    opa_jwt_cache: usize,
    /// The OPA ext_authz server binary (built by `benches/opa/build`).
    #[arg(long, env = "OPA_EXT_AUTHZ")]
    opa: Option<PathBuf>,
    /// Internal: serve the constant-OK Check on this address and nothing else.
    #[arg(long, hide = true)]
    serve_constant_ok: Option<std::net::SocketAddr>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(addr) = args.serve_constant_ok {
        return common::serve_constant_ok(addr);
    }
    if args.smoke {
        args.duration = 1.0;
        args.warmup = 0.3;
        args.runs = 1;
        args.tokens = args.tokens.min(2_000);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if args.memory {
            memory(&args).await
        } else {
            load(&args).await
        }
    })
}

/// How many Checks are in flight, over how many connections.
#[derive(Clone, Copy, Debug)]
struct Shape {
    concurrency: usize,
    connections: usize,
}

impl Args {
    fn shape(&self) -> Shape {
        Shape {
            concurrency: self.concurrency,
            connections: self.connections,
        }
    }
}

/// Latency percentiles and throughput of one run.
#[derive(Clone, Debug, Default)]
struct Stats {
    rps: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    failed: u64,
    /// The server's CPU time per Check, µs.
    cpu: Option<f64>,
    /// Seconds measured.
    seconds: f64,
}

impl Stats {
    fn from_samples(mut micros: Vec<u32>, seconds: f64, failed: u64) -> Self {
        micros.sort_unstable();
        let at = |q: f64| {
            let index = ((micros.len() as f64 * q).ceil() as usize).saturating_sub(1);
            micros.get(index).map_or(f64::NAN, |v| f64::from(*v))
        };
        Self {
            rps: micros.len() as f64 / seconds,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: micros.last().map_or(f64::NAN, |v| f64::from(*v)),
            failed,
            cpu: None,
            seconds,
        }
    }

    fn line(&self, name: &str, label: &str) -> String {
        format!(
            "{name:<10} {label:<8} {:>9.0} rps  p50 {:>6.0} µs  p90 {:>6.0} µs  p99 {:>6.0} µs  max {:>7.0} µs{}{}",
            self.rps,
            self.p50,
            self.p90,
            self.p99,
            self.max,
            self.cpu
                .map(|c| format!("  server CPU {c:.0} µs/Check"))
                .unwrap_or_default(),
            if self.failed > 0 {
                format!("  FAILED or unsent {}", self.failed)
            } else {
                String::new()
            }
        )
    }
}

/// A Check server under load, in its own process.
struct Target {
    name: String,
    addr: std::net::SocketAddr,
    pid: Option<u32>,
    _child: Child,
}

async fn load(args: &Args) -> anyhow::Result<()> {
    let idp = DevIdp::start().await?;
    let dir = tempfile::tempdir()?;
    let requests: Arc<Vec<CheckRequest>> = Arc::new(
        (0..args.concurrency.max(1))
            .map(|_| common::check_request(&common::mint(&idp, &idp.signing_kid(), KeyAlg::Rs256)))
            .collect(),
    );
    let mut targets = Vec::new();
    for name in &args.targets {
        match start_target(name, args, &idp, dir.path()).await? {
            Some(target) => targets.push(target),
            None => println!("{name}: skipped (not built; see benches/README.md)"),
        }
    }
    for target in &targets {
        let stats = closed_loop(target.addr, &requests, args.shape(), 0.2, 0.2).await?;
        if stats.failed > 0 {
            bail!(
                "{}: Checks failed or were denied while warming up",
                target.name
            );
        }
    }
    println!("load average before the runs: {}", common::load_average());
    println!(
        "closed loop: {} in flight over {} connections, {} client threads, {} s runs after {} s warm-up, {} runs",
        args.concurrency,
        args.connections,
        args.client_threads,
        args.duration,
        args.warmup,
        args.runs
    );

    let mut results: Vec<Vec<Stats>> = vec![Vec::new(); targets.len()];
    for run in 0..args.runs {
        for i in 0..targets.len() {
            let index = (i + run) % targets.len();
            let target = &targets[index];
            let pass = closed_loop(
                target.addr,
                &requests,
                args.shape(),
                args.warmup,
                args.duration,
            );
            let stats = with_cpu(target, args.warmup, pass).await?;
            println!("{}", stats.line(&target.name, &format!("run {}", run + 1)));
            results[index].push(stats);
        }
    }
    println!("load average after the runs: {}", common::load_average());
    let medians: Vec<Stats> = results.iter().map(|runs| median_stats(runs)).collect();
    println!(
        "\nmedians of {} runs (closed loop, {} in flight):",
        args.runs, args.concurrency
    );
    for (target, stats) in targets.iter().zip(&medians) {
        println!("{}", stats.line(&target.name, "median"));
    }
    // Ratios per round (the runs of a round are seconds apart), then their median: steadier
    // than a ratio of medians when the machine's load drifts.
    let ratio = |a: usize, b: usize, f: fn(&Stats) -> f64| {
        let per_round: Vec<f64> = results[a]
            .iter()
            .zip(&results[b])
            .map(|(x, y)| f(x) / f(y))
            .collect();
        common::median(&per_round)
    };
    for (a, first) in targets.iter().enumerate() {
        if !first.name.starts_with("tollgate")
            && !args.variants.iter().any(|(n, _)| *n == first.name)
        {
            continue;
        }
        for (b, second) in targets.iter().enumerate() {
            if a != b {
                println!(
                    "{} / {:<9} rps {:.2}×  p99 {:.2}×  (median of per-round ratios)",
                    first.name,
                    second.name,
                    ratio(a, b, |s| s.rps),
                    ratio(a, b, |s| s.p99)
                );
            }
        }
    }

    let rate_of = targets.iter().position(|t| t.name == args.rate_of);
    if let (Some(t), true) = (rate_of, args.rate_fraction > 0.0) {
        let rate = medians[t].rps * args.rate_fraction;
        println!(
            "\nrate-limited: {rate:.0} Checks/s ({:.0} % of {}'s median maximum), open loop, latency from when each Check was due",
            args.rate_fraction * 100.0,
            args.rate_of
        );
        let mut results: Vec<Vec<Stats>> = vec![Vec::new(); targets.len()];
        for run in 0..args.runs {
            for i in 0..targets.len() {
                let index = (i + run) % targets.len();
                let target = &targets[index];
                let pass = open_loop(target.addr, &requests, args, rate);
                let stats = with_cpu(target, args.warmup, pass).await?;
                println!("{}", stats.line(&target.name, &format!("run {}", run + 1)));
                results[index].push(stats);
            }
        }
        println!("load average after the runs: {}", common::load_average());
        println!(
            "\nmedians of {} rate-limited runs at {rate:.0} Checks/s:",
            args.runs
        );
        for (target, runs) in targets.iter().zip(&results) {
            println!("{}", median_stats(runs).line(&target.name, "median"));
        }
    }
    Ok(())
}

fn median_stats(runs: &[Stats]) -> Stats {
    let of = |f: fn(&Stats) -> f64| common::median(&runs.iter().map(f).collect::<Vec<_>>());
    Stats {
        rps: of(|s| s.rps),
        p50: of(|s| s.p50),
        p90: of(|s| s.p90),
        p99: of(|s| s.p99),
        max: of(|s| s.max),
        failed: runs.iter().map(|s| s.failed).sum(),
        cpu: {
            let cpu: Vec<f64> = runs.iter().filter_map(|s| s.cpu).collect();
            (!cpu.is_empty()).then(|| common::median(&cpu))
        },
        seconds: of(|s| s.seconds),
    }
}

async fn start_target(
    name: &str,
    args: &Args,
    idp: &DevIdp,
    dir: &Path,
) -> anyhow::Result<Option<Target>> {
    let addr = common::free_port();
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut command = match name {
        "tollgate" => tollgate_command(&args.tollgate, idp, addr, dir, 64 * 1024 * 1024)?.0,
        variant if args.variants.iter().any(|(n, _)| n == variant) => {
            let binary = args
                .variants
                .iter()
                .find(|(n, _)| n == variant)
                .map(|(_, p)| p);
            let binary = binary.expect("the variant exists");
            let dir = dir.join(variant);
            std::fs::create_dir_all(&dir)?;
            tollgate_command(binary, idp, addr, &dir, 64 * 1024 * 1024)?.0
        }
        "constant" => {
            let mut command = Command::new(std::env::current_exe()?);
            command.arg("--serve-constant-ok").arg(addr.to_string());
            command
        }
        "opa" => {
            let Some(binary) = opa_binary(args) else {
                return Ok(None);
            };
            let mut command = Command::new(binary);
            command
                .arg("-addr")
                .arg(addr.to_string())
                .arg("-jwks-url")
                .arg(idp.jwks_url())
                .arg("-issuer")
                .arg(idp.issuer())
                .arg("-policy")
                .arg(workspace().join("benches/opa/policy.rego"))
                .arg("-jwt-cache")
                .arg(args.opa_jwt_cache.to_string());
            command
        }
        other => {
            bail!("unknown target {other:?} (expected tollgate, constant, opa or a --variant)")
        }
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let target = Target {
        name: name.to_owned(),
        addr,
        pid: child.id(),
        _child: child,
    };
    wait_serving(&target, idp).await?;
    Ok(Some(target))
}

/// `tollgate serve` on `grpc`, with a config of `cache_bytes`; also returns the admin
/// address.
fn tollgate_command(
    binary: &Path,
    idp: &DevIdp,
    grpc: std::net::SocketAddr,
    dir: &Path,
    cache_bytes: u64,
) -> anyhow::Result<(Command, std::net::SocketAddr)> {
    let admin = common::free_port();
    let config = dir.join("tollgate.yaml");
    std::fs::write(
        &config,
        common::tollgate_yaml(idp, grpc, admin, cache_bytes),
    )?;
    let mut command = Command::new(binary);
    command.arg("serve").arg("--config").arg(config);
    Ok((command, admin))
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn opa_binary(args: &Args) -> Option<PathBuf> {
    let path = args
        .opa
        .clone()
        .unwrap_or_else(|| workspace().join("target/opa-ext-authz"));
    path.is_file().then_some(path)
}

/// Waits until the target answers a valid Check with OK (keys loaded, listener up).
async fn wait_serving(target: &Target, idp: &DevIdp) -> anyhow::Result<()> {
    let request = common::check_request(&common::mint(idp, &idp.signing_kid(), KeyAlg::Rs256));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut client) =
            AuthorizationClient::connect(format!("http://{}", target.addr)).await
            && let Ok(answer) = client.check(request.clone()).await
            && answer.get_ref().status.as_ref().map(|s| s.code) == Some(0)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not answer OK within 20 s", target.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(addr: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..count.max(1) {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Whether a Check answer is an allow.
fn allowed(answer: &Result<tonic::Response<CheckResponse>, tonic::Status>) -> bool {
    answer
        .as_ref()
        .is_ok_and(|a| a.get_ref().status.as_ref().map(|s| s.code) == Some(0))
}

/// `concurrency` Checks in flight for `warmup + duration` seconds; latencies of the last
/// `duration` seconds.
async fn closed_loop(
    addr: std::net::SocketAddr,
    requests: &Arc<Vec<CheckRequest>>,
    shape: Shape,
    warmup: f64,
    duration: f64,
) -> anyhow::Result<Stats> {
    let channels = connect(addr, shape.connections).await?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(warmup);
    let until = measure_from + Duration::from_secs_f64(duration);
    let mut tasks = Vec::new();
    for i in 0..shape.concurrency.max(1) {
        let mut client = AuthorizationClient::new(channels[i % channels.len()].clone());
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let request = &requests[i % requests.len()];
            let mut samples = Vec::with_capacity(1 << 16);
            let mut failed = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let answer = client.check(request.clone()).await;
                let micros = sent.elapsed().as_micros();
                if sent >= measure_from {
                    if allowed(&answer) {
                        samples.push(u32::try_from(micros).unwrap_or(u32::MAX));
                    } else {
                        failed += 1;
                    }
                }
            }
            (samples, failed)
        }));
    }
    collect(tasks, duration).await
}

/// `rate` Checks per second for `warmup + duration` seconds, open loop: each of
/// `concurrency` senders is due every `concurrency / rate` seconds, and a Check's latency
/// counts from when it was due, so a stalled server is not excused by the generator
/// waiting for it. Checks still unsent a second after the end count as failed.
async fn open_loop(
    addr: std::net::SocketAddr,
    requests: &Arc<Vec<CheckRequest>>,
    args: &Args,
    rate: f64,
) -> anyhow::Result<Stats> {
    let channels = connect(addr, args.connections).await?;
    let senders = args.concurrency.max(1);
    let period = Duration::from_secs_f64(senders as f64 / rate);
    let start = tokio::time::Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for i in 0..senders {
        let mut client = AuthorizationClient::new(channels[i % channels.len()].clone());
        let requests = requests.clone();
        let offset = period.mul_f64(i as f64 / senders as f64);
        tasks.push(tokio::spawn(async move {
            let request = &requests[i % requests.len()];
            let mut ticks = tokio::time::interval_at(start + offset, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut samples = Vec::with_capacity(1 << 16);
            let mut failed = 0u64;
            loop {
                let due = ticks.tick().await;
                if due >= until {
                    break;
                }
                // A server that cannot keep up leaves a backlog; what is still unsent a
                // second after the end counts as failed, so the run stays bounded in time.
                if tokio::time::Instant::now() >= until + Duration::from_secs(1) {
                    let left = until.saturating_duration_since(due).as_secs_f64();
                    failed += (left / period.as_secs_f64()).ceil() as u64;
                    break;
                }
                let answer = client.check(request.clone()).await;
                let micros = due.elapsed().as_micros();
                if due >= measure_from {
                    if allowed(&answer) {
                        samples.push(u32::try_from(micros).unwrap_or(u32::MAX));
                    } else {
                        failed += 1;
                    }
                }
            }
            (samples, failed)
        }));
    }
    collect(tasks, args.duration).await
}

/// A run's stats with the target's CPU time per Check, counted from the end of the
/// warm-up to the end of the run.
async fn with_cpu(
    target: &Target,
    warmup: f64,
    run: impl std::future::Future<Output = anyhow::Result<Stats>>,
) -> anyhow::Result<Stats> {
    let pid = target.pid;
    let start = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
        pid.and_then(common::cpu_micros)
    });
    let mut stats = run.await?;
    let end = pid.and_then(common::cpu_micros);
    if let (Ok(Some(start)), Some(end)) = (start.await, end) {
        let checks = stats.rps * stats.seconds;
        stats.cpu = Some(end.saturating_sub(start) as f64 / checks);
    }
    Ok(stats)
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, u64)>>,
    duration: f64,
) -> anyhow::Result<Stats> {
    let mut all = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (samples, f) = task.await?;
        all.extend(samples);
        failed += f;
    }
    Ok(Stats::from_samples(all, duration, failed))
}

/// tollgate's resident memory idle, warm, and with `args.tokens` distinct cached tokens.
async fn memory(args: &Args) -> anyhow::Result<()> {
    let idp = DevIdp::start().await?;
    // Ed25519 signs in microseconds, so minting 100 000 tokens takes seconds; a cache entry
    // holds the claims, whatever the algorithm.
    let kid = idp.rotate(KeyAlg::EdDsa);
    let minted = Instant::now();
    let requests: Arc<Vec<CheckRequest>> = Arc::new({
        let idp = idp.clone();
        let count = args.tokens;
        tokio::task::spawn_blocking(move || {
            (0..count)
                .map(|_| common::check_request(&common::mint(&idp, &kid, KeyAlg::EdDsa)))
                .collect()
        })
        .await?
    });
    println!(
        "minted {} EdDSA tokens in {:.1} s",
        requests.len(),
        minted.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let grpc = common::free_port();
    // Room for every entry: the memory bound must not evict during the measurement.
    let (mut command, admin) = tollgate_command(&args.tollgate, &idp, grpc, dir.path(), 1 << 30)?;
    let log = std::fs::File::create(dir.path().join("tollgate.log"))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start tollgate")?;
    let pid = child.id().context("tollgate has a pid")?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let ready = Instant::now() + Duration::from_secs(20);
    while !http
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > ready {
            bail!("tollgate was not ready within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid)?;

    let target = Target {
        name: "tollgate".into(),
        addr: grpc,
        pid: Some(pid),
        _child: child,
    };
    let one = Arc::new(vec![requests[0].clone()]);
    let warm = closed_loop(
        target.addr,
        &one,
        Shape {
            concurrency: 4,
            connections: 1,
        },
        0.0,
        1.0,
    )
    .await?;
    if warm.failed > 0 {
        bail!("tollgate denied the warm-up token");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm_rss = rss_kib(pid)?;

    let filled = Instant::now();
    let failed = each_once(grpc, &requests, args.concurrency, args.connections).await?;
    if failed > 0 {
        bail!("{failed} of the distinct tokens were not allowed");
    }
    let fill_seconds = filled.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let full = rss_kib(pid)?;
    let hwm = status_kib(pid, "VmHWM:")?;
    let n = requests.len() as f64;

    println!("tollgate serve (pid {pid}), RSS from /proc/{pid}/status:");
    println!(
        "  idle, keys loaded, no Check yet      {:>8.1} MiB",
        idle as f64 / 1024.0
    );
    println!(
        "  warm (1 s of Checks with one token)  {:>8.1} MiB  ({:.0} Checks/s)",
        warm_rss as f64 / 1024.0,
        warm.rps
    );
    println!(
        "  after {} distinct tokens          {:>8.1} MiB  (filled in {fill_seconds:.1} s; peak {:.1} MiB)",
        requests.len(),
        full as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "  per cached token                     {:>8.0} bytes  ((after - warm) / {})",
        (full.saturating_sub(warm_rss)) as f64 * 1024.0 / n,
        requests.len()
    );
    if let Ok(metrics) = http.get(format!("http://{admin}/metrics")).send().await
        && let Ok(text) = metrics.text().await
    {
        for line in text
            .lines()
            .filter(|l| l.contains("cache") && !l.starts_with('#'))
        {
            println!("  /metrics: {line}");
        }
    }
    drop(target);
    Ok(())
}

/// Sends every request once, `concurrency` at a time; returns how many were not allowed.
async fn each_once(
    addr: std::net::SocketAddr,
    requests: &Arc<Vec<CheckRequest>>,
    concurrency: usize,
    connections: usize,
) -> anyhow::Result<u64> {
    let channels = connect(addr, connections).await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..concurrency.max(1) {
        let mut client = AuthorizationClient::new(channels[i % channels.len()].clone());
        let requests = requests.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u64;
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(request) = requests.get(index) else {
                    break;
                };
                if !allowed(&client.check(request.clone()).await) {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await?;
    }
    Ok(failed)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// `NAME=PATH` of `--variant`.
fn parse_variant(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH, got {text:?}"))?;
    Ok((name.to_owned(), PathBuf::from(path)))
}
