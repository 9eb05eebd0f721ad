//! The admin HTTP API: its routes, who a token lets in (the operator, or a tenant for its own
//! apps only; metrics without a token show no tenant's data), metrics, app status, tokens and
//! streams. The actions on apps (deploy, rollback, drain, remove, ...) are in `actions`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::metrics::{preamble, AppMetrics};
use super::tokens::{same_token, TenantTokens};
use crate::access::TenantAccess;
use crate::app::{AppHandle, AppState, Launcher};
use crate::names::{StreamName, TenantId};
use crate::plugin::{Limits, PluginEngine};
use crate::workflow::SharedStatus;

/// What the admin API needs to compile a new version off the hot path.
pub struct Plugins {
    pub engine: Arc<PluginEngine>,
    /// Also bounds an upload: `limits.max_wasm_bytes`.
    pub limits: Limits,
    /// The only folder a deploy by path may read from (`admin.apps_dir`); `None`: no path deploys.
    pub apps_dir: Option<PathBuf>,
}

/// Everything the admin API answers from.
pub struct Admin {
    pub launcher: Arc<Launcher>,
    /// The operator's token.
    pub token: String,
    pub tokens: Arc<TenantTokens>,
    pub access: Arc<TenantAccess>,
    pub plugins: Plugins,
    /// The alert workflow's trigger, when this host runs it (`[workflow]`).
    pub workflow: Option<SharedStatus>,
    /// What deploys, rollbacks and removals changed, for this host's next start.
    pub deployed: Arc<super::deployed::Deployments>,
}

/// Serves the admin API until the listener fails.
pub async fn serve(
    listen: SocketAddr,
    admin: Admin,
    tls: Option<Arc<openssl::ssl::SslAcceptor>>,
) -> std::io::Result<()> {
    let admin = Arc::new(admin);
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/apps", get(list))
        .route("/scope", get(whoami))
        .route("/tenants", get(list_tenants))
        .route("/workflow", get(workflow_status))
        .route(
            "/tenants/{tenant}/token",
            post(issue_token).delete(revoke_token),
        )
        .route("/tenants/{tenant}/streams/{stream}", post(create_stream))
        .route("/apps/{tenant}/deploy", post(super::actions::deploy))
        .route("/apps/{tenant}/{app}", get(status))
        .route("/apps/{tenant}/{app}/drain", post(super::actions::drain))
        .route(
            "/apps/{tenant}/{app}/rollback",
            post(super::actions::rollback),
        )
        .route("/apps/{tenant}/{app}/remove", post(super::actions::remove))
        .route("/apps/{tenant}/{app}/pause", post(super::actions::pause))
        .route("/apps/{tenant}/{app}/resume", post(super::actions::resume))
        .route("/apps/{tenant}/{app}/recent", get(recent))
        .merge(super::ui::routes())
        .with_state(admin);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    match tls {
        Some(acceptor) => {
            tracing::info!(%listen, "admin API listening (HTTPS)");
            axum::serve(super::tls::TlsListener::new(listener, acceptor)?, router).await
        }
        None => {
            tracing::info!(%listen, "admin API listening");
            axum::serve(listener, router).await
        }
    }
}

pub(super) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// Which tenants a request's token may see and steer; every endpoint asks [`Scope::sees`]
/// before it shows or touches a tenant's app.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// The operator token: every tenant on this host, and the tenants' tokens.
    Operator,
    /// A tenant's token (`mysimbdp tenant add`): that tenant's apps only.
    Tenant(TenantId),
}

impl Scope {
    fn sees(&self, tenant: &str) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Tenant(own) => own.as_str() == tenant,
        }
    }
}

/// The scope of the token a request carries, or the answer refusing it.
async fn scope(admin: &Admin, headers: &HeaderMap) -> Result<Scope, Box<Response>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same_token(token, &admin.token) => Ok(Scope::Operator),
        Some(token) => match admin.tokens.tenant_of(token).await {
            Ok(Some(tenant)) => Ok(Scope::Tenant(tenant)),
            Ok(None) => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "wrong admin token",
            ))),
            Err(e) => Err(Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the token cannot be checked now: {e}"),
            ))),
        },
        None => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing admin token: send `Authorization: Bearer <token>`",
        ))),
    }
}

/// `Some` answer refusing the request, unless its token may act for `tenant`.
pub(super) async fn refuse(admin: &Admin, headers: &HeaderMap, tenant: &str) -> Option<Response> {
    match scope(admin, headers).await {
        Ok(scope) if scope.sees(tenant) => None,
        Ok(_) => Some(error(
            StatusCode::FORBIDDEN,
            format!("this token does not act for tenant `{tenant}`"),
        )),
        Err(denied) => Some(*denied),
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
    use std::sync::atomic::Ordering::Relaxed;
    // Totals since the start: a reader's means per interval are differences of two readings.
    let totals = |(count, seconds): (u64, f64)| json!({ "count": count, "seconds": seconds });
    let mut durations = serde_json::Map::new();
    durations.insert("batch".into(), totals(m.batch_duration.totals()));
    durations.insert("checkpoint".into(), totals(m.checkpoint_duration.totals()));
    for (call, sums) in m.plugin_call_totals() {
        durations.insert(format!("plugin_{call}"), totals(sums));
    }
    let mut described = json!({
        "tenant": handle.tenant.as_str(),
        "app": handle.app,
        "version": deployed.version,
        "state_version": deployed.state_version,
        "digest": deployed.digest,
        "contract": deployed.contract,
        "swaps": deployed.swaps,
        "state": status.state,
        "caught_up": status.caught_up,
        "hibernating": m.hibernating.load(Relaxed) == 1,
        "last_error": status.last_error,
        "waiting": status.waiting,
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
        "watermark_ms": m.watermark_ms.load(Relaxed),
        "open_windows": m.open_windows.load(Relaxed),
        "lag": m.lag.load(Relaxed),
        "stream": handle.stream.as_str(),
        "delivery": handle.delivery,
        "now_ms": super::recent::now_ms(),
        "max_event_ms": nonzero(m.max_event_ms.load(Relaxed)),
        "last_checkpoint_ms": nonzero(m.last_checkpoint_ms.load(Relaxed)),
        "first_record_ms": nonzero(m.first_record_ms.load(Relaxed)),
        "input_rate": AppMetrics::get_rate(&m.input_rate),
        "process_rate": AppMetrics::get_rate(&m.process_rate),
        "sink_errors": get(&m.sink_errors),
        "plugin_failures": get(&m.plugin_failures),
        "quarantined": get(&m.quarantined),
        "future_records": get(&m.future_records),
        "over_quota": get(&m.over_quota),
        "cpu_throttled_ms": get(&m.cpu_throttled_ms),
        "durations": durations,
        "enrich": status.enrich,
    });
    // Beside the literal above, which is at `json!`'s recursion limit.
    described["unreadable"] = json!(status.unreadable);
    described["records_committed"] = json!(get(&m.records_committed));
    described
}

/// A time in ms, or `null` for 0 (not yet).
fn nonzero(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::from(ms)
    }
}

/// Prometheus metrics: with a token, the series of the apps it sees (the operator's: every
/// app; a tenant's: its own); without one, only the descriptions, no tenant's data, so a probe
/// that carries no token still gets an answer and learns nothing about any tenant.
async fn metrics(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    let scope = if headers.contains_key(header::AUTHORIZATION) {
        match scope(&admin, &headers).await {
            Ok(scope) => Some(scope),
            Err(denied) => return *denied,
        }
    } else {
        None
    };
    let mut out = String::from(preamble());
    let visible = admin
        .launcher
        .all()
        .into_iter()
        .filter(|h| scope.as_ref().is_some_and(|s| s.sees(h.tenant.as_str())));
    for handle in visible {
        handle
            .metrics
            .render(&mut out, handle.tenant.as_str(), &handle.app);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// The alert workflow's trigger on this host: its counts, the alert it waits on and the last
/// runs it started; a tenant's token sees only the alerts of that tenant's apps.
async fn workflow_status(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    let scope = match scope(&admin, &headers).await {
        Ok(scope) => scope,
        Err(denied) => return *denied,
    };
    let Some(shared) = &admin.workflow else {
        return error(
            StatusCode::NOT_FOUND,
            "this host runs no workflow trigger: add a [workflow] section to its config, or run \
             `mysimbdp trigger` on its own (its status is on its [status] listen address)",
        );
    };
    let status = match shared.lock() {
        Ok(status) => status.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    match scope {
        Scope::Operator => Json(status).into_response(),
        Scope::Tenant(tenant) => Json(status.of_tenant(tenant.as_str())).into_response(),
    }
}

/// What the request's token may see: `{"scope": "operator"}` or
/// `{"scope": "tenant", "tenant": …}`.
async fn whoami(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    match scope(&admin, &headers).await {
        Ok(Scope::Operator) => Json(json!({ "scope": "operator" })).into_response(),
        Ok(Scope::Tenant(tenant)) => {
            Json(json!({ "scope": "tenant", "tenant": tenant.as_str() })).into_response()
        }
        Err(denied) => *denied,
    }
}

/// A new admin token for a tenant, replacing any it had (operator only); `?replace=false`
/// refuses when it has one. The token is in the answer once and kept only as a digest. Where
/// the platform logs in to Kafka and Cassandra, the tenant also gets (new passwords for) its
/// Kafka user and ACLs and its Cassandra role, in the answer once and kept nowhere.
async fn issue_token(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    query: Query<TokenRequest>,
) -> Response {
    let tenant = match operator_for(&admin, &headers, &tenant).await {
        Ok(tenant) => tenant,
        Err(denied) => return *denied,
    };
    match super::tenants::issue(
        &admin.tokens,
        &admin.access,
        &tenant,
        query.replace,
        super::recent::now_ms(),
    )
    .await
    {
        Ok(answer) => Json(answer).into_response(),
        Err(e @ super::tenants::TenantError::Exists(_)) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct StreamRequest {
    partitions: Option<i32>,
}

/// The most partitions a stream created through the API may have.
const MAX_STREAM_PARTITIONS: i32 = 1024;

/// Creates a tenant's input stream topic unless it exists (operator only): tenants may write
/// their streams but not create topics.
async fn create_stream(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, stream)): Path<(String, String)>,
    query: Query<StreamRequest>,
) -> Response {
    let tenant = match operator_for(&admin, &headers, &tenant).await {
        Ok(tenant) => tenant,
        Err(denied) => return *denied,
    };
    let stream = match StreamName::new(&stream) {
        Ok(stream) => stream,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Some(p) = query
        .partitions
        .filter(|p| !(1..=MAX_STREAM_PARTITIONS).contains(p))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{p} partitions: use 1 to {MAX_STREAM_PARTITIONS}"),
        );
    }
    match admin
        .launcher
        .create_stream(&tenant, &stream, query.partitions)
        .await
    {
        Ok(topic) => {
            tracing::info!(%tenant, %topic, "stream created");
            Json(json!({ "tenant": tenant.as_str(), "topic": topic })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The tenants that have an admin token (operator only).
async fn list_tenants(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    match scope(&admin, &headers).await {
        Ok(Scope::Operator) => {}
        Ok(Scope::Tenant(_)) => {
            return error(
                StatusCode::FORBIDDEN,
                "only the operator token lists tenants",
            )
        }
        Err(denied) => return *denied,
    }
    match admin.tokens.list().await {
        Ok(tenants) => Json(json!({ "tenants": tenants })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn revoke_token(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    let tenant = match operator_for(&admin, &headers, &tenant).await {
        Ok(tenant) => tenant,
        Err(denied) => return *denied,
    };
    match super::tenants::revoke(&admin.tokens, &admin.access, &tenant).await {
        Ok(()) => Json(json!({ "tenant": tenant.as_str(), "revoked": true })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    #[serde(default = "yes")]
    replace: bool,
}

fn yes() -> bool {
    true
}

/// The tenant an operator-only request names, or the answer refusing it.
async fn operator_for(
    admin: &Admin,
    headers: &HeaderMap,
    tenant: &str,
) -> Result<TenantId, Box<Response>> {
    match scope(admin, headers).await? {
        Scope::Operator => {}
        Scope::Tenant(_) => {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "only the operator token manages tenants' tokens",
            )))
        }
    }
    TenantId::new(tenant).map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, e.to_string())))
}

/// Every app the token may see, in (tenant, app) order.
async fn list(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    let scope = match scope(&admin, &headers).await {
        Ok(scope) => scope,
        Err(denied) => return *denied,
    };
    Json(
        admin
            .launcher
            .all()
            .iter()
            .filter(|h| scope.sees(h.tenant.as_str()))
            .map(|h| describe(h))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// An app's latest result rows and dead letters and its deploy history, newest first.
async fn recent(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => {
            let recent = &handle.recent;
            Json(json!({
                "tenant": handle.tenant.as_str(),
                "app": handle.app,
                "results": recent.latest_results(),
                "dead_letters": recent.latest_dead_letters(),
                "history": recent.history(),
            }))
            .into_response()
        }
        Err(response) => *response,
    }
}

/// `?until=<state>&timeout=<seconds>`: answer once the app is in that state (or in one it
/// will not leave by itself, such as `failed`), or after the timeout, whichever comes first.
#[derive(Deserialize)]
struct StatusQuery {
    until: Option<AppState>,
    timeout: Option<u64>,
}

/// The longest a status request waits for a state: a client that wants longer asks again.
const MAX_STATUS_WAIT_S: u64 = 300;
const DEFAULT_STATUS_WAIT_S: u64 = 30;

async fn status(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Response {
    let handle = match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => handle,
        Err(response) => return *response,
    };
    let Query(query) = match query {
        Ok(query) => query,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "status options: {e} (`until` is a state such as drained, running or \
                     paused; `timeout` is whole seconds, at most {MAX_STATUS_WAIT_S})"
                ),
            )
        }
    };
    if let Some(until) = query.until {
        let wait = query
            .timeout
            .unwrap_or(DEFAULT_STATUS_WAIT_S)
            .min(MAX_STATUS_WAIT_S);
        // Not reached in time: the answer says the state it is in.
        let _ = tokio::time::timeout(Duration::from_secs(wait), handle.reached(until)).await;
    }
    Json(describe(&handle)).into_response()
}

/// The app a request names, if the request carries the token and the app runs.
pub(super) async fn app_of(
    admin: &Admin,
    headers: &HeaderMap,
    tenant: &str,
    app: &str,
) -> Result<Arc<AppHandle>, Box<Response>> {
    if let Some(denied) = refuse(admin, headers, tenant).await {
        return Err(Box::new(denied));
    }
    admin
        .launcher
        .get(tenant, app)
        .ok_or_else(|| Box::new(not_found(tenant, app)))
}
