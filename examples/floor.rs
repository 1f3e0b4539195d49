//! The floor of the HTTP benchmark: a bare axum server that parses the same JSON body as
//! gatehouse and answers a constant. Whatever gatehouse costs above this is its own.
//!
//! Run with: `cargo run --release --example floor -- 127.0.0.1:18100`

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

async fn constant(body: Bytes) -> ([(&'static str, &'static str); 1], &'static str) {
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    std::hint::black_box(parsed);
    (
        [("content-type", "application/json")],
        r#"{"decision":"Allow","diagnostics":{"reason":["roles.editor"],"errors":[],"missing":[]},"policy_version":"0000000000000000"}"#,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18100".into());
    let app = Router::new()
        .route("/v1/is_authorized", post(constant))
        .route("/v1/is_authorized/batch", post(constant));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await
}
