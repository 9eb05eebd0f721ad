//! The admin HTTP API: Prometheus metrics for anyone on the admin address, app status and
//! actions only with the operator token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::metrics::{preamble, AppMetrics};
use crate::app::{AppHandle, Control, Reply};
use crate::plugin::{Limits, PluginEngine};

/// The apps an admin server can see and steer, by (tenant, app).
pub type Apps = BTreeMap<(String, String), Arc<AppHandle>>;

/// What the admin API needs to compile a new version off the hot path.
pub struct Plugins {
    pub engine: Arc<PluginEngine>,
    pub limits: Limits,
}

struct Admin {
    apps: Apps,
    token: String,
    plugins: Plugins,
}

/// How long a deploy or rollback waits for the app's worker to reach a batch boundary.
const TAKE_OVER_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves the admin API until the listener fails.
pub async fn serve(
    listen: SocketAddr,
    apps: Apps,
    token: String,
    plugins: Plugins,
) -> std::io::Result<()> {
    let admin = Arc::new(Admin {
        apps,
        token,
        plugins,
    });
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/apps", get(list))
        .route("/apps/{tenant}/deploy", post(deploy))
        .route("/apps/{tenant}/{app}", get(status))
        .route("/apps/{tenant}/{app}/drain", post(drain))
        .route("/apps/{tenant}/{app}/rollback", post(rollback))
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
    let deployed = handle.deployed();
    let m = &handle.metrics;
    let get = AppMetrics::get;
    json!({
        "tenant": handle.tenant.as_str(),
        "app": handle.app,
        "version": deployed.version,
        "state_version": deployed.state_version,
        "digest": deployed.digest,
        "swaps": deployed.swaps,
        "state": status.state,
        "caught_up": status.caught_up,
        "last_error": status.last_error,
        "failures": status.failures,
        "checkpoints": status.checkpoints,
        "partitions": status.partitions,
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

#[derive(Deserialize)]
struct DeployRequest {
    /// The new version's `.wasm`, on the platform's machine.
    path: PathBuf,
    /// Start every open window fresh instead of carrying its state.
    #[serde(default)]
    reset_state: bool,
}

#[derive(Deserialize, Default)]
struct RollbackRequest {
    #[serde(default)]
    reset_state: bool,
}

/// Sends a take-over request to the app's worker and waits for its answer.
async fn take_over(handle: &Arc<AppHandle>, control: impl FnOnce(Reply) -> Control) -> Response {
    let (reply, answer) = std::sync::mpsc::channel();
    if !handle.send(control(reply)) {
        return error(
            StatusCode::CONFLICT,
            format!("app `{}` is not running", handle.app),
        );
    }
    let answer = tokio::task::spawn_blocking(move || answer.recv_timeout(TAKE_OVER_TIMEOUT)).await;
    match answer {
        Ok(Ok(Ok(result))) => {
            tracing::info!(tenant = %handle.tenant, app = %handle.app, %result, "take-over done");
            (
                StatusCode::OK,
                Json(json!({ "result": result, "status": describe(handle) })),
            )
                .into_response()
        }
        Ok(Ok(Err(reason))) => {
            tracing::warn!(tenant = %handle.tenant, app = %handle.app, %reason, "take-over refused");
            error(
                StatusCode::CONFLICT,
                format!("refused, the running version goes on: {reason}"),
            )
        }
        _ => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the app did not answer within {} s",
                TAKE_OVER_TIMEOUT.as_secs()
            ),
        ),
    }
}

async fn deploy(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Json(request): Json<DeployRequest>,
) -> Response {
    if let Some(denied) = refuse(&admin, &headers) {
        return denied;
    }
    let engine = admin.plugins.engine.clone();
    let limits = admin.plugins.limits.clone();
    let path = request.path.clone();
    let compiled = match tokio::task::spawn_blocking(move || engine.load(&path, limits)).await {
        Ok(Ok(compiled)) => compiled,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let app = compiled.spec.name.to_string();
    let Some(handle) = admin.apps.get(&(tenant.clone(), app.clone())) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "tenant `{tenant}` runs no app `{app}`: add new apps to the config (deploying a new app is not supported yet)"
            ),
        );
    };
    let reset_state = request.reset_state;
    take_over(handle, |reply| Control::Deploy {
        app: Box::new(compiled),
        reset_state,
        reply,
    })
    .await
}

async fn rollback(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
    body: Option<Json<RollbackRequest>>,
) -> Response {
    if let Some(denied) = refuse(&admin, &headers) {
        return denied;
    }
    let Some(handle) = admin.apps.get(&(tenant.clone(), app.clone())) else {
        return not_found(&tenant, &app);
    };
    let reset_state = body.map(|Json(b)| b.reset_state).unwrap_or_default();
    take_over(handle, |reply| Control::Rollback { reset_state, reply }).await
}
