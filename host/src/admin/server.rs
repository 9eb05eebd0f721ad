//! The admin HTTP API: Prometheus metrics for anyone on the admin address, app status and
//! actions only with the operator token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::metrics::{preamble, AppMetrics};
use crate::app::{AppHandle, Control};

/// The apps an admin server can see and steer, by (tenant, app).
pub type Apps = BTreeMap<(String, String), Arc<AppHandle>>;

struct Admin {
    apps: Apps,
    token: String,
}

/// Serves the admin API until the listener fails.
pub async fn serve(listen: SocketAddr, apps: Apps, token: String) -> std::io::Result<()> {
    let admin = Arc::new(Admin { apps, token });
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/apps", get(list))
        .route("/apps/{tenant}/{app}", get(status))
        .route("/apps/{tenant}/{app}/drain", post(drain))
        .with_state(admin);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "admin API listening");
    axum::serve(listener, router).await
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Some` answer refusing the request, unless it carries the operator token.
fn refuse(admin: &Admin, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same(token.as_bytes(), admin.token.as_bytes()) => None,
        Some(_) => Some(error(StatusCode::UNAUTHORIZED, "wrong admin token")),
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "missing admin token: send `Authorization: Bearer <token>`",
        )),
    }
}

fn not_found(tenant: &str, app: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no app `{app}` for tenant `{tenant}`"),
    )
}

/// The JSON an operator sees for one app.
pub fn describe(handle: &AppHandle) -> Value {
    let status = handle.status();
    let m = &handle.metrics;
    let get = AppMetrics::get;
    json!({
        "tenant": handle.tenant.as_str(),
        "app": handle.app,
        "version": handle.version,
        "state_version": handle.state_version,
        "digest": handle.digest,
        "state": status.state,
        "caught_up": status.caught_up,
        "last_error": status.last_error,
        "records_in": get(&m.records_in),
        "records_processed": get(&m.records_processed),
        "late": get(&m.late),
        "dead_letters": get(&m.dead_letters),
        "key_mismatches": get(&m.key_mismatches),
        "filtered_out": get(&m.filtered_out),
        "rows_emitted": get(&m.rows_emitted),
        "watermark_ms": m.watermark_ms.load(std::sync::atomic::Ordering::Relaxed),
        "open_windows": m.open_windows.load(std::sync::atomic::Ordering::Relaxed),
        "lag": m.lag.load(std::sync::atomic::Ordering::Relaxed),
    })
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let mut out = String::from(preamble());
    for ((tenant, app), handle) in &admin.apps {
        handle.metrics.render(&mut out, tenant, app);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn list(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    if let Some(denied) = refuse(&admin, &headers) {
        return denied;
    }
    Json(admin.apps.values().map(|h| describe(h)).collect::<Vec<_>>()).into_response()
}

async fn status(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    if let Some(denied) = refuse(&admin, &headers) {
        return denied;
    }
    match admin.apps.get(&(tenant.clone(), app.clone())) {
        Some(handle) => Json(describe(handle)).into_response(),
        None => not_found(&tenant, &app),
    }
}

async fn drain(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    if let Some(denied) = refuse(&admin, &headers) {
        return denied;
    }
    let Some(handle) = admin.apps.get(&(tenant.clone(), app.clone())) else {
        return not_found(&tenant, &app);
    };
    tracing::info!(%tenant, %app, "drain requested");
    if handle.send(Control::Drain) {
        (StatusCode::ACCEPTED, Json(describe(handle))).into_response()
    } else {
        error(StatusCode::CONFLICT, format!("app `{app}` is not running"))
    }
}
