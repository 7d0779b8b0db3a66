//! Through Envoy, on loopback: the same token and the same mTLS echo upstream behind the
//! front proxy with ext_authz to tollgate, with Envoy's own `jwt_authn` filter (as
//! `envoy/front-proxy-jwt-authn.yaml` has it, and with its JWT cache turned on), with no
//! authorization at all, and with ext_authz to the OPA peer when it is built
//! (benches/opa/). Load comes from `wrk` at a fixed number of connections for a bounded
//! time, alternating configs run after run; the end is one table of medians and ratios.
//!
//! Started by `benches/envoy/compare` (see there for the options).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use dev_idp::{DevIdp, KeyAlg};
use testkit::echo::EchoUpstream;
use testkit::envoy::Envoy;
use testkit::pki::TestPki;
use testkit::template;
use tokio::process::{Child, Command};

#[path = "../common/mod.rs"]
mod common;

/// Requests per second and latency through Envoy, per authorization setup.
#[derive(Debug, Parser)]
struct Args {
    /// Seconds of each measured run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before the runs, per config.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Runs per config, alternating configs.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// wrk connections (requests in flight).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Configs to run, of no_auth, jwt_authn, jwt_authn_cache, tollgate, tollgate_lean
    /// (ext_authz sends only the headers tollgate reads), constant (ext_authz to a server
    /// that allows everything), opa, or a `--variant`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "no_auth,jwt_authn,jwt_authn_cache,constant,tollgate,opa"
    )]
    configs: Vec<String>,
    /// 1 s runs, one of each, no warm-up: proves the scripts work, measures nothing.
    #[arg(long)]
    smoke: bool,
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
    serve_constant_ok: Option<SocketAddr>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One authorization setup in front of the upstream.
struct Setup {
    name: String,
    envoy: Envoy,
    /// The ext_authz server's pid, to count its CPU time.
    authz_pid: Option<u32>,
    /// Envoy's pid, to count its CPU time.
    envoy_pid: Option<u32>,
}

/// What one wrk run measured.
#[derive(Clone, Debug, Default)]
struct Run {
    rps: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    non_2xx: u64,
    errors: u64,
    /// CPU time of the ext_authz server per request, µs.
    authz_cpu: Option<f64>,
    /// CPU time of Envoy per request, µs.
    envoy_cpu: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(addr) = args.serve_constant_ok {
        return common::serve_constant_ok(addr);
    }
    if args.smoke {
        args.duration = 1;
        args.warmup = 0;
        args.runs = 1;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(compare(&args))
}

async fn compare(args: &Args) -> anyhow::Result<()> {
    let wrk = which("wrk").context(
        "wrk is not installed: `apt-get install wrk` (benches/envoy/compare installs it)",
    )?;
    let dir = tempfile::tempdir()?;
    let idp = DevIdp::start().await?;
    let token = common::mint(&idp, &idp.signing_kid(), KeyAlg::Rs256);
    let pki = TestPki::generate()?;
    let certs = dir.path().join("certs");
    pki.write_to(&certs)?;
    let echo = EchoUpstream::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        pki.echo_server_config()?,
    )
    .await?;

    let mut children: Vec<Child> = Vec::new();
    let mut setups = Vec::new();
    for name in &args.configs {
        let (file, authz) = match name.as_str() {
            "no_auth" => ("front-proxy-no-auth.yaml", None),
            "jwt_authn" | "jwt_authn_cache" => ("front-proxy-jwt-authn.yaml", None),
            "tollgate" | "tollgate_lean" => {
                let (child, addr) = start_tollgate(&args.tollgate, &idp, dir.path()).await?;
                ("front-proxy.yaml", Some((child, addr)))
            }
            variant if args.variants.iter().any(|(n, _)| n == variant) => {
                let binary = args
                    .variants
                    .iter()
                    .find(|(n, _)| n == variant)
                    .map(|(_, p)| p);
                let dir = dir.path().join(variant);
                std::fs::create_dir_all(&dir)?;
                let binary = binary.expect("the variant exists");
                let (child, addr) = start_tollgate(binary, &idp, &dir).await?;
                ("front-proxy.yaml", Some((child, addr)))
            }
            "constant" => {
                let started = start_constant(dir.path()).await?;
                ("front-proxy.yaml", Some(started))
            }
            "opa" => match start_opa(args, &idp, dir.path()).await? {
                Some(started) => ("front-proxy.yaml", Some(started)),
                None => {
                    println!("opa: skipped (not built; run benches/opa/build)");
                    continue;
                }
            },
            other => bail!("unknown config {other:?}"),
        };
        let authz_addr = authz.as_ref().map(|(_, addr)| *addr);
        let authz_pid = authz.as_ref().and_then(|(child, _)| child.id());
        let mut config = render(file, &idp, authz_addr, &echo, &certs)?;
        if name == "jwt_authn_cache" {
            config = with_jwt_cache(&config)?;
        }
        if name == "no_auth" {
            config = without_token_upstream(&config)?;
        }
        if name == "tollgate_lean" {
            config = with_allowed_headers(&config)?;
        }
        if let Some((child, _)) = authz {
            children.push(child);
        }
        let before = envoy_children();
        let envoy = Envoy::start(&config)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?;
        let envoy_pid = envoy_children().difference(&before).next().copied();
        let setup = Setup {
            name: name.clone(),
            envoy,
            authz_pid,
            envoy_pid,
        };
        preflight(&setup, &token).await?;
        setups.push(setup);
    }

    let script = dir.path().join("bearer.lua");
    std::fs::write(
        &script,
        format!("wrk.method = \"GET\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"),
    )?;
    println!(
        "wrk: {} connections, {} thread(s), {} s runs, {} runs per config, alternating; Envoy with 1 worker",
        args.connections, args.threads, args.duration, args.runs
    );
    if args.warmup > 0 {
        for setup in &setups {
            wrk_run(&wrk, &script, setup, args, args.warmup).await?;
        }
    }
    println!("load average before the runs: {}", common::load_average());
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); setups.len()];
    for round in 0..args.runs {
        for i in 0..setups.len() {
            let index = (i + round) % setups.len();
            let setup = &setups[index];
            let run = wrk_run(&wrk, &script, setup, args, args.duration).await?;
            println!(
                "{:<16} run {}  {:>8.0} rps  p50 {:>6.0} µs  p99 {:>6.0} µs{}{}",
                setup.name,
                round + 1,
                run.rps,
                run.p50,
                run.p99,
                cpu_text(&run),
                if run.non_2xx + run.errors > 0 {
                    format!(
                        "  NOT OK: {} non-2xx, {} socket errors",
                        run.non_2xx, run.errors
                    )
                } else {
                    String::new()
                }
            );
            if run.non_2xx + run.errors > 0 {
                bail!("{}: requests failed under load", setup.name);
            }
            runs[index].push(run);
        }
    }
    println!("load average after the runs: {}", common::load_average());
    table(&setups, &runs, args);
    drop(children);
    Ok(())
}

fn table(setups: &[Setup], runs: &[Vec<Run>], args: &Args) {
    let median =
        |runs: &[Run], f: fn(&Run) -> f64| common::median(&runs.iter().map(f).collect::<Vec<_>>());
    let rps: Vec<f64> = runs.iter().map(|r| median(r, |x| x.rps)).collect();
    let p99: Vec<f64> = runs.iter().map(|r| median(r, |x| x.p99)).collect();
    let find = |name: &str| setups.iter().position(|s| s.name == name);
    let floor = find("no_auth");
    let native = find("jwt_authn_cache").or_else(|| find("jwt_authn"));
    println!(
        "\nmedians of {} runs (ratios: median of each round's ratio), {} connections, {} s each ({})",
        args.runs,
        args.connections,
        args.duration,
        now_utc()
    );
    println!(
        "| config | rps | p50 µs | p90 µs | p99 µs | rps / no_auth | rps / {0} | p99 / {0} | Envoy CPU µs/req | authz CPU µs/req |",
        native.map_or("jwt_authn", |n| setups[n].name.as_str())
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (i, setup) in setups.iter().enumerate() {
        // Runs of one round ran minutes apart at most; the median of each round's ratio
        // holds up better than a ratio of medians when the machine's load drifts.
        let ratio = |base: Option<usize>, f: fn(&Run) -> f64| {
            base.map_or("-".to_owned(), |b| {
                let per_round: Vec<f64> = runs[i]
                    .iter()
                    .zip(&runs[b])
                    .map(|(run, base)| f(run) / f(base))
                    .collect();
                format!("{:.2}×", common::median(&per_round))
            })
        };
        let cpu = |f: fn(&Run) -> Option<f64>| {
            let values = runs[i].iter().filter_map(f).collect::<Vec<_>>();
            if values.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}", common::median(&values))
            }
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
            setup.name,
            rps[i],
            median(&runs[i], |x| x.p50),
            median(&runs[i], |x| x.p90),
            p99[i],
            ratio(floor, |r| r.rps),
            ratio(native, |r| r.rps),
            ratio(native, |r| r.p99),
            cpu(|r| r.envoy_cpu),
            cpu(|r| r.authz_cpu),
        );
    }
}

async fn start_tollgate(
    binary: &Path,
    idp: &DevIdp,
    dir: &Path,
) -> anyhow::Result<(Child, SocketAddr)> {
    let grpc = common::free_port();
    let admin = common::free_port();
    let path = testkit::workspace_root().join("examples/demo.yaml");
    let text = std::fs::read_to_string(&path)?;
    let port = idp.addr().port().to_string();
    let config = template::render(
        &text,
        &[
            ("IDP_PORT", port.as_str()),
            ("TOLLGATE_GRPC_PORT", &grpc.port().to_string()),
            ("TOLLGATE_ADMIN_PORT", &admin.port().to_string()),
        ],
    )?;
    let config_path = dir.join("tollgate.yaml");
    std::fs::write(&config_path, config)?;
    let log = std::fs::File::create(dir.join("tollgate.log"))?;
    let child = Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start tollgate")?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            bail!("tollgate was not ready within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, grpc))
}

/// The constant-OK Check server (this binary again): what ext_authz costs when the
/// authorization server does nothing.
async fn start_constant(dir: &Path) -> anyhow::Result<(Child, SocketAddr)> {
    let addr = common::free_port();
    let log = std::fs::File::create(dir.join("constant.log"))?;
    let child = Command::new(std::env::current_exe()?)
        .arg("--serve-constant-ok")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the constant-OK server")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("the constant-OK server did not listen within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, addr))
}

async fn start_opa(
    args: &Args,
    idp: &DevIdp,
    dir: &Path,
) -> anyhow::Result<Option<(Child, SocketAddr)>> {
    let root = testkit::workspace_root();
    let binary = args
        .opa
        .clone()
        .unwrap_or_else(|| root.join("target/opa-ext-authz"));
    if !binary.is_file() {
        return Ok(None);
    }
    let addr = common::free_port();
    let log = std::fs::File::create(dir.join("opa.log"))?;
    let child = Command::new(binary)
        .arg("-addr")
        .arg(addr.to_string())
        .arg("-jwks-url")
        .arg(idp.jwks_url())
        .arg("-issuer")
        .arg(idp.issuer())
        .arg("-policy")
        .arg(root.join("benches/opa/policy.rego"))
        .arg("-jwt-cache")
        .arg(args.opa_jwt_cache.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start opa-ext-authz")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("opa-ext-authz did not listen within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Some((child, addr)))
}

/// An Envoy config of `envoy/` with this run's ports and certificates; `authz` is where
/// ext_authz sends Checks.
fn render(
    file: &str,
    idp: &DevIdp,
    authz: Option<SocketAddr>,
    echo: &EchoUpstream,
    certs: &Path,
) -> anyhow::Result<String> {
    let path = testkit::workspace_root().join("envoy").join(file);
    let text = std::fs::read_to_string(&path)?;
    let idp_port = idp.addr().port().to_string();
    let authz_port = authz.map_or(0, |a| a.port()).to_string();
    let upstream_port = echo.addr().port().to_string();
    let certs = certs.to_str().context("certificate path is UTF-8")?;
    Ok(template::render(
        &text,
        &[
            ("ENVOY_PORT", "0"),
            ("ENVOY_ADMIN_PORT", "0"),
            ("IDP_PORT", &idp_port),
            ("TOLLGATE_PORT", &authz_port),
            ("UPSTREAM_PORT", &upstream_port),
            ("CERT_DIR", certs),
            ("CORS_ORIGIN", "http://app.tollgate.test"),
        ],
    )?)
}

/// Turns on jwt_authn's verified-JWT cache (off unless configured), beside `forward`.
fn with_jwt_cache(config: &str) -> anyhow::Result<String> {
    let anchor = "                  forward: false\n";
    if !config.contains(anchor) {
        bail!(
            "front-proxy-jwt-authn.yaml changed: no `forward: false` line to put the JWT cache beside"
        );
    }
    Ok(config.replacen(
        anchor,
        &format!("{anchor}                  jwt_cache_config: {{ jwt_cache_size: 1000 }}\n"),
        1,
    ))
}

/// Keeps the token from the upstream, as tollgate's `strip_token` and jwt_authn's
/// `forward: false` do in the other configs: the echo upstream answers with every header
/// it got, so a forwarded token would make only this config's answers larger.
fn without_token_upstream(config: &str) -> anyhow::Result<String> {
    let anchor = "              domains: [\"*\"]\n";
    if !config.contains(anchor) {
        bail!("front-proxy-no-auth.yaml changed: no `domains` line to strip the token beside");
    }
    Ok(config.replacen(
        anchor,
        &format!("{anchor}              request_headers_to_remove: [authorization]\n"),
        1,
    ))
}

/// Makes ext_authz send only the headers tollgate reads (the gRPC service gets only
/// what is listed, `authorization` too) instead of every request header.
fn with_allowed_headers(config: &str) -> anyhow::Result<String> {
    let anchor = "              failure_mode_allow: false\n";
    if !config.contains(anchor) {
        bail!(
            "front-proxy.yaml changed: no `failure_mode_allow: false` line to put allowed_headers beside"
        );
    }
    Ok(config.replacen(
        anchor,
        &format!(
            "{anchor}              allowed_headers:\n                patterns: [{{ exact: authorization }}, {{ exact: x-correlation-id }}, {{ exact: x-request-id }}]\n"
        ),
        1,
    ))
}

/// The token gets through, and (with authorization) no token does not.
async fn preflight(setup: &Setup, token: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = setup.envoy.url("/orders/42");
    let with = http.get(&url).bearer_auth(token).send().await?.status();
    if with != 200 {
        bail!("{}: the bench token got {with}, not 200", setup.name);
    }
    // tollgate answers 401 with a challenge; the OPA peer, like opa-envoy-plugin's
    // boolean policies, 403.
    let without = http.get(&url).send().await?.status();
    let open = matches!(setup.name.as_str(), "no_auth" | "constant");
    if without.is_success() != open {
        bail!("{}: no token got {without}", setup.name);
    }
    Ok(())
}

async fn wrk_run(
    wrk: &Path,
    script: &Path,
    setup: &Setup,
    args: &Args,
    seconds: u64,
) -> anyhow::Result<Run> {
    let cpu_before = setup.authz_pid.and_then(common::cpu_micros);
    let envoy_before = setup.envoy_pid.and_then(common::cpu_micros);
    let output = Command::new(wrk)
        .arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{seconds}s"))
        .args(["--timeout", "2s", "--latency", "-s"])
        .arg(script)
        .arg(setup.envoy.url("/orders/42"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(seconds + 15), output)
        .await
        .context("wrk did not stop")??;
    let cpu_after = setup.authz_pid.and_then(common::cpu_micros);
    let envoy_after = setup.envoy_pid.and_then(common::cpu_micros);
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut run = parse_wrk(&text).with_context(|| format!("cannot read wrk's output:\n{text}"))?;
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let requests = run.rps * seconds as f64;
        run.authz_cpu = Some((after - before) as f64 / requests);
    }
    if let (Some(before), Some(after)) = (envoy_before, envoy_after) {
        run.envoy_cpu = Some((after - before) as f64 / (run.rps * seconds as f64));
    }
    Ok(run)
}

/// Requests per second, latency percentiles (µs) and failures from `wrk --latency`.
fn parse_wrk(text: &str) -> Option<Run> {
    let mut run = Run::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => run.rps = v.parse().ok()?,
            (Some("50%"), Some(v)) => run.p50 = micros(v)?,
            (Some("90%"), Some(v)) => run.p90 = micros(v)?,
            (Some("99%"), Some(v)) => run.p99 = micros(v)?,
            (Some("Non-2xx"), _) => run.non_2xx = line.rsplit(' ').next()?.parse().ok()?,
            (Some("Socket"), _) => {
                run.errors = line
                    .split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    (run.rps > 0.0).then_some(run)
}

/// wrk's `1.23ms`, `456.00us`, `1.10s` in µs.
fn micros(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number,
        "ms" => number * 1e3,
        "s" => number * 1e6,
        "m" => number * 60e6,
        _ => return None,
    })
}

fn cpu_text(run: &Run) -> String {
    let mut text = String::new();
    if let Some(cpu) = run.envoy_cpu {
        text.push_str(&format!("  Envoy CPU {cpu:.0} µs/req"));
    }
    if let Some(cpu) = run.authz_cpu {
        text.push_str(&format!("  authz CPU {cpu:.0} µs/req"));
    }
    text
}

/// The pids of the Envoys this process started (its children named `envoy`).
fn envoy_children() -> std::collections::HashSet<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let parent = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            head.ends_with("(envoy") && parent == Some(me)
        })
        .collect()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

fn now_utc() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("unix time {seconds}")
}

/// `NAME=PATH` of `--variant`.
fn parse_variant(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH, got {text:?}"))?;
    Ok((name.to_owned(), PathBuf::from(path)))
}
