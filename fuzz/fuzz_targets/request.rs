//! Fuzzes the decision routes with arbitrary bodies: every answer must be a clean 4xx or a
//! 200, never a 5xx, a panic or a hang. The sidecar is built by `gatehouse::app::build`, as
//! `gatehouse serve` builds it.
//!
//! See `fuzz/README.md` for how to run it.
#![no_main]

use std::sync::OnceLock;

use gatehouse::config::Config;
use gatehouse::policy::Sources;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fn app() -> &'static (axum::Router, tokio::runtime::Runtime) {
    static APP: OnceLock<(axum::Router, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = Config {
            listen: "127.0.0.1:0".into(),
            ..Config::for_sources(&Sources {
                policies: root.join("policies"),
                schema: root.join("schemas/project_sharing.cedarschema"),
                entities: None,
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let sidecar = runtime
            .block_on(gatehouse::app::build(&config))
            .expect("the bundled sidecar starts");
        (sidecar.router(), runtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let (app, runtime) = app();
    let path = match data.first().map(|b| b % 4) {
        Some(0) => "/v1/is_authorized",
        Some(1) => "/v1/is_authorized/batch",
        Some(2) => "/v1/plan",
        _ => "/v1/allowed_actions",
    };
    let request = axum::http::Request::post(path)
        .body(axum::body::Body::from(data.get(1..).unwrap_or_default().to_vec()))
        .expect("request");
    let response = runtime
        .block_on(app.clone().oneshot(request))
        .expect("infallible");
    assert!(
        response.status().as_u16() < 500,
        "{path}: {}",
        response.status()
    );
});
