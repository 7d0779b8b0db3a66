//! Real identity providers on loopback, for the interop tests (`tests/interop_*.rs`).
//!
//! `scripts/install-idps` downloads and prepares each provider under `.tooling/idps/NAME/`
//! and leaves there either `READY` or, when the download failed for a reason outside the
//! project (a registry outage), `UNAVAILABLE` with the reason. [`install`] reads those
//! marks: a provider that is unavailable makes its tests skip with a loud message on
//! stderr; a provider that was never installed fails them, naming the command to run.
//!
//! [`Supervised`] runs a provider as its own process group under a small `bash` supervisor
//! whose stdin is a pipe from the test process: when the test binary exits, however it
//! exits, the pipe closes and the supervisor stops the whole group and deletes the run
//! folder. So each test binary can start its provider once, keep it in a `static`, and
//! share it across its tests.
//!
//! The rest builds what every interop test needs: tollgate's config written only from the
//! provider's discovery document, token requests, and Envoy in front of tollgate.
//!
//! Test files include it with `#[path = "support/interop.rs"] mod interop;`.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use testkit::echo::EchoUpstream;
use testkit::envoy::Envoy;
use testkit::pki::TestPki;

/// The audience of the API the tests protect, and one it does not accept.
pub const AUDIENCE: &str = "api://orders";
pub const OTHER_AUDIENCE: &str = "api://billing";
/// The scope that `orders-read` requires.
pub const READ_SCOPE: &str = "orders.read";

/// What `scripts/install-idps` left for a provider.
#[derive(Debug)]
pub enum Install {
    /// Installed in this folder (`.tooling/idps/NAME`), which holds `READY`.
    Ready(PathBuf),
    /// Could not be installed for a reason outside the project, as the script recorded it.
    Unavailable(String),
}

/// The repository root. (Not `testkit::workspace_root()`: that is fixed when testkit is
/// compiled, and a target folder shared with another checkout can hold its value.)
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What `scripts/install-idps NAME` left, panicking when it was never run for `name`.
pub fn install(name: &str) -> Install {
    let dir = repo_root().join(".tooling/idps").join(name);
    if let Ok(reason) = std::fs::read_to_string(dir.join("UNAVAILABLE")) {
        return Install::Unavailable(reason.trim().to_owned());
    }
    assert!(
        dir.join("READY").is_file(),
        "{name} is not installed in {}: run `scripts/install-idps {name}` first",
        dir.display()
    );
    Install::Ready(dir)
}

/// Says loudly, past the test harness's output capture, that `name`'s tests are skipped.
pub fn announce_skip(name: &str, reason: &str) {
    let line = "!".repeat(88);
    let _ = writeln!(
        std::io::stderr(),
        "\n{line}\n!! SKIPPED: {name} interop tests: {reason}\n\
         !! (scripts/install-idps {name} recorded this; the tests did not run)\n{line}\n"
    );
}

/// A provider process (and everything it starts) under a supervisor that ends it when the
/// test process goes away.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    pid: u32,
    log: PathBuf,
    // Held open for the life of the test process; its closing is the stop signal.
    _stdin: ChildStdin,
}

/// Starts `command` in a new process group, its output going to a log in `run_dir`.
/// The supervisor deletes `run_dir` after stopping the group.
const SUPERVISOR: &str = r#"
dir=$1; shift
setsid "$@" >"$dir/log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read -r _ || true
kill -TERM -- "-$pid" 2>/dev/null
for _ in $(seq 100); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL -- "-$pid" 2>/dev/null
rm -rf -- "$dir"
"#;

impl Supervised {
    /// Starts `program` with `args` and `envs` in `run_dir` (a folder this process made
    /// for the run, deleted when the provider stops).
    // The supervisor is never waited for: it lives as long as the test process, and the
    // kernel reaps it with that process.
    #[allow(clippy::zombie_processes)]
    pub fn start(
        name: &str,
        run_dir: TempDir,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
    ) -> Supervised {
        let run_dir = run_dir.keep();
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("supervise")
            .arg(&run_dir)
            .arg(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .current_dir(&run_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bash to supervise {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut pid = String::new();
        BufReader::new(stdout).read_line(&mut pid).unwrap();
        let pid = pid
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the supervisor of {name} printed no pid: {pid:?}"));
        Supervised {
            name: name.to_owned(),
            pid,
            log: run_dir.join("log"),
            _stdin: child.stdin.take().unwrap(),
        }
    }

    /// Whether the provider's main process still runs.
    pub fn running(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// Everything the provider printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `url` answers 200, failing (with the log's end) if the provider exits or
    /// is not up within `timeout`.
    pub async fn wait_for(&self, url: &str, timeout: Duration) {
        let http = http_client();
        let deadline = Instant::now() + timeout;
        loop {
            let answer = http.get(url).send().await;
            if answer.is_ok_and(|a| a.status() == 200) {
                return;
            }
            assert!(
                self.running(),
                "{} exited before {url} answered; its log ends:\n{}",
                self.name,
                self.log_tail(40)
            );
            assert!(
                Instant::now() < deadline,
                "{} did not answer {url} within {timeout:?}; its log ends:\n{}",
                self.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago, for a provider that must know its port
/// (and so its issuer) before it starts.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A plain HTTP client for loopback, ignoring any proxy settings.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The provider's discovery document, as tollgate will read it.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// Where it was fetched.
    pub url: String,
    /// Its `issuer`.
    pub issuer: String,
    /// Its `token_endpoint`.
    pub token_endpoint: String,
    /// The whole document.
    pub document: Value,
}

/// Fetches the discovery document at `url`.
pub async fn discover(url: &str) -> Discovery {
    let document: Value = http_client()
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("no discovery document at {url}: {e}"))
        .json()
        .await
        .unwrap();
    let field = |name: &str| {
        document[name]
            .as_str()
            .unwrap_or_else(|| panic!("discovery at {url} has no {name}: {document}"))
            .to_owned()
    };
    Discovery {
        url: url.to_owned(),
        issuer: field("issuer"),
        token_endpoint: field("token_endpoint"),
        document: document.clone(),
    }
}

/// tollgate's config for a provider, from its discovery document only: the provider `idp`
/// and three policies: `orders-read` (audience [`AUDIENCE`], scope `orders.read`) and
/// `orders-write` (scope `orders.write`), which Envoy's `front-proxy.yaml` names, and
/// `orders-audience` (the audience alone, for providers that put no scopes in tokens).
pub fn tollgate_config(discovery: &Discovery, algorithms: &[&str]) -> String {
    format!(
        r#"
server:
  grpc: 127.0.0.1:0
  admin: 127.0.0.1:0
providers:
  idp:
    issuer: "{issuer}"
    discovery: "{url}"
    algorithms: [{algorithms}]
policies:
  orders-read:
    provider: idp
    audiences: ["{AUDIENCE}"]
    scopes: {{ all: [{READ_SCOPE}] }}
    forward_claims: {{ sub: x-auth-sub, scope: x-auth-scopes }}
    realm: orders
  orders-write:
    provider: idp
    audiences: ["{AUDIENCE}"]
    scopes: {{ all: [orders.write] }}
    forward_claims: {{ sub: x-auth-sub }}
    realm: orders
  orders-audience:
    provider: idp
    audiences: ["{AUDIENCE}"]
    forward_claims: {{ sub: x-auth-sub }}
    realm: orders
default: deny
"#,
        issuer = discovery.issuer,
        url = discovery.url,
        algorithms = algorithms.join(", "),
    )
}

/// A client-credentials token request to `token_endpoint`, authenticating with HTTP Basic;
/// `params` adds `scope`, `resource` and the like. Returns the whole JSON answer.
///
/// Panics with the provider's answer when it refuses: a provider that runs but rejects our
/// calls is a test failure.
pub async fn token_request(
    token_endpoint: &str,
    client_id: &str,
    secret: &str,
    params: &[(&str, &str)],
) -> Value {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    for (name, value) in params {
        form.append_pair(name, value);
    }
    post_token(token_endpoint, Some((client_id, secret)), form.finish()).await
}

/// POSTs a form to a token endpoint (with HTTP Basic when `basic` is set) and returns the
/// JSON answer, panicking with the provider's answer on anything but 200.
pub async fn post_token(endpoint: &str, basic: Option<(&str, &str)>, form: String) -> Value {
    let mut request = http_client()
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    if let Some((id, secret)) = basic {
        // RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(encode(id), Some(encode(secret)));
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let body = answer.text().await.unwrap();
    assert_eq!(status, 200, "token endpoint {endpoint} refused: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The `access_token` of a token response.
pub fn access_token(response: &Value) -> String {
    response["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {response}"))
        .to_owned()
}

/// The decoded JOSE header and payload of a JWT (no verification: for assertions about
/// the provider's token shapes only).
pub fn decode_unverified(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let part = |i: usize| -> Value {
        let text = token.split('.').nth(i).expect("a JWT has three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    (part(0), part(1))
}

/// Envoy (`envoy/front-proxy.yaml`) in front of a tollgate, with the mTLS echo upstream.
pub struct Front {
    pub envoy: Envoy,
    pub echo: EchoUpstream,
    _pki: TestPki,
    _certs: TempDir,
}

impl Front {
    /// Starts the upstream and Envoy, whose ext_authz cluster points at `tollgate`.
    pub async fn start(tollgate: SocketAddr) -> Front {
        let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
        let pki = TestPki::generate().unwrap();
        let certs = tempfile::tempdir().unwrap();
        pki.write_to(certs.path()).unwrap();
        let echo = EchoUpstream::start(localhost, pki.echo_server_config().unwrap())
            .await
            .unwrap();

        let path = repo_root().join("envoy/front-proxy.yaml");
        let template = std::fs::read_to_string(&path).unwrap();
        let config = testkit::template::render(
            &template,
            &[
                ("ENVOY_PORT", "0"),
                ("ENVOY_ADMIN_PORT", "0"),
                ("TOLLGATE_PORT", &tollgate.port().to_string()),
                ("UPSTREAM_PORT", &echo.addr().port().to_string()),
                ("CERT_DIR", certs.path().to_str().unwrap()),
                ("CORS_ORIGIN", "http://app.tollgate.test"),
            ],
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let envoy = Envoy::start(&config)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        Front {
            envoy,
            echo,
            _pki: pki,
            _certs: certs,
        }
    }

    /// GETs `path` through Envoy with `token` as a bearer token; returns the status, the
    /// `www-authenticate` header and the body.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Option<String>, String) {
        let answer = http_client()
            .get(self.envoy.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let challenge = answer
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, challenge, answer.text().await.unwrap())
    }
}
