//! A single-page app in a real browser calls the API on another origin through Envoy.
//!
//! Headless Chromium loads a page from `http://localhost:<port>`; the page's script calls
//! `http://127.0.0.1:<envoy>/orders` with `fetch` and a bearer token, which makes the
//! browser send a CORS preflight first. The test passes only if the browser itself accepted
//! Envoy's CORS answers: a refused preflight or a missing `Access-Control-Allow-Origin`
//! makes `fetch` reject, and a header that Envoy does not expose reads as `null`.
//!
//! Skipped, with a message, only where Chromium or chromedriver is not installed or
//! Chromium cannot start; `scripts/install-tools` installs both.

#[path = "support/envoy.rs"]
mod envoy_support;

use envoy_support::{Echoed, FRONT_PROXY, Stack};
use serde_json::{Value, json};
use testkit::browser::{Browser, Page, Unavailable};

/// The app: one function that calls the API and reports what its script could see.
const APP: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>orders app</title></head>
<body>
<script>
async function callApi(url, token) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  try {
    const response = await fetch(url, { headers });
    return {
      status: response.status,
      correlationId: response.headers.get("x-correlation-id"),
      challenge: response.headers.get("www-authenticate"),
      notExposed: response.headers.get("x-envoy-upstream-service-time"),
      body: await response.text(),
    };
  } catch (error) {
    return { error: String(error) };
  }
}
</script>
</body>
</html>
"#;

/// Runs `callApi(url, token)` in the page and returns what it resolved to.
async fn call_api(browser: &Browser, url: &str, token: &str) -> Value {
    let script = "const [url, token, done] = arguments; callApi(url, token).then(done);";
    browser
        .client()
        .execute_async(script, vec![json!(url), json!(token)])
        .await
        .expect("the page's script runs")
}

#[tokio::test]
async fn browser_app_on_another_origin_calls_the_api_through_envoy() {
    let page = Page::serve(APP).await.unwrap();
    let stack = Stack::start_with(FRONT_PROXY, &page.origin()).await;
    let browser = match Browser::start().await {
        Ok(browser) => browser,
        Err(error) if error.downcast_ref::<Unavailable>().is_some() => {
            eprintln!("SKIPPED browser test: {error:#}");
            return;
        }
        Err(error) => panic!("cannot start the browser: {error:#}"),
    };
    let token = stack.token("orders.read").await;
    let api = stack.url("/orders");
    browser.client().goto(&page.origin()).await.unwrap();

    let good = call_api(&browser, &api, &token).await;
    let bad = call_api(&browser, &api, "not-a-jwt").await;
    browser.close().await.unwrap();

    // The preflight passed and the call went through: fetch resolved with the answer.
    assert_eq!(good["error"], Value::Null, "fetch failed: {good}");
    assert_eq!(good["status"], 200, "{good}");
    // Readable by the script only because Envoy lists it in expose_headers...
    let correlation_id = good["correlationId"].as_str().unwrap();
    // ...while a header Envoy does not expose stays hidden from it.
    assert_eq!(good["notExposed"], Value::Null);
    let seen = Echoed::parse(good["body"].as_str().unwrap());
    assert_eq!(seen.header("x-correlation-id"), [correlation_id]);
    assert_eq!(seen.header("x-auth-sub"), ["demo"]);
    assert_eq!(seen.header("origin"), [page.origin().as_str()]);
    // The bad token's 401 reaches the script, challenge and correlation id included.
    assert_eq!(bad["error"], Value::Null, "fetch failed: {bad}");
    assert_eq!(bad["status"], 401);
    assert_eq!(
        bad["challenge"],
        r#"Bearer realm="orders", error="invalid_token", error_description="token is not a well-formed JWS""#
    );
    let body: Value = serde_json::from_str(bad["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["correlation_id"], bad["correlationId"]);
    // Envoy saw the two calls, which went on to tollgate, and at least one preflight (the
    // browser may cache it for the second call), which Envoy answered itself: neither
    // tollgate nor the upstream saw one.
    let valid_origin = stack
        .envoy
        .stat("http.front.cors.origin_valid")
        .await
        .unwrap();
    let checks = stack.envoy.stat("cluster.tollgate.upstream_rq_total").await;
    assert!(
        valid_origin >= 3,
        "{valid_origin} requests with a valid origin"
    );
    assert_eq!(checks.unwrap(), 2);
    assert_eq!(stack.echo.requests(), 1);
}
