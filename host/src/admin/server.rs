//! The admin HTTP API: Prometheus metrics, app status and actions with the operator token, or
//! a tenant's token for that tenant's apps only (metrics without a token show no tenant's data).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::deployed::{Deployments, KeepError, Placement};
use super::metrics::{preamble, AppMetrics};
use super::tokens::{same_token, TenantTokens};
use crate::access::TenantAccess;
use crate::app::{AppHandle, Control, Launcher, Reply};
use crate::checkpoint::Delivery;
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
    pub deployed: Arc<Deployments>,
}

/// How long a deploy or rollback waits for the app's worker to reach a batch boundary.
const TAKE_OVER_TIMEOUT: Duration = Duration::from_secs(120);

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
        .route("/apps/{tenant}/deploy", post(deploy))
        .route("/apps/{tenant}/{app}", get(status))
        .route("/apps/{tenant}/{app}/drain", post(drain))
        .route("/apps/{tenant}/{app}/rollback", post(rollback))
        .route("/apps/{tenant}/{app}/remove", post(remove))
        .route("/apps/{tenant}/{app}/pause", post(pause))
        .route("/apps/{tenant}/{app}/resume", post(resume))
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

fn error(code: StatusCode, message: impl Into<String>) -> Response {
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
async fn refuse(admin: &Admin, headers: &HeaderMap, tenant: &str) -> Option<Response> {
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
    json!({
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
    })
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

async fn status(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => Json(describe(&handle)).into_response(),
        Err(response) => *response,
    }
}

/// The app a request names, if the request carries the token and the app runs.
async fn app_of(
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

async fn drain(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    let handle = match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => handle,
        Err(response) => return *response,
    };
    tracing::info!(%tenant, %app, "drain requested");
    if handle.send(Control::Drain) {
        (StatusCode::ACCEPTED, Json(describe(&handle))).into_response()
    } else {
        error(StatusCode::CONFLICT, format!("app `{app}` is not running"))
    }
}

/// A deploy by path (JSON body); an upload carries the same options as query parameters.
#[derive(Deserialize, Default)]
struct DeployRequest {
    /// The new version's `.wasm`, inside `admin.apps_dir` on the platform's machine.
    #[serde(default)]
    path: PathBuf,
    /// Start every open window fresh instead of carrying its state.
    #[serde(default)]
    reset_state: bool,
    /// For an app the tenant does not run yet: the stream it reads.
    #[serde(default)]
    stream: Option<String>,
    /// For an app the tenant does not run yet: its delivery guarantee.
    #[serde(default)]
    delivery: Delivery,
}

#[derive(Deserialize, Default)]
struct RollbackRequest {
    #[serde(default)]
    reset_state: bool,
}

/// Sends a take-over request to the app's worker and waits for its answer.
async fn ask_worker(handle: &Arc<AppHandle>, control: impl FnOnce(Reply) -> Control) -> Response {
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

/// The longest JSON body a deploy by path may have.
const MAX_DEPLOY_JSON: usize = 64 << 10;

/// A deploy's `.wasm`: uploaded bytes, or a file inside `admin.apps_dir`.
enum Wasm {
    Uploaded(axum::body::Bytes),
    File(PathBuf),
}

/// Reads what a deploy request names: `Content-Type: application/wasm` uploads the bytes (at
/// most `admin.max_upload_mb`, options in the query); JSON names a `.wasm` in `admin.apps_dir`.
async fn deploy_input(
    plugins: &Plugins,
    headers: &HeaderMap,
    query: Result<Query<DeployRequest>, QueryRejection>,
    body: Body,
) -> Result<(Wasm, DeployRequest), Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let max = plugins.limits.max_wasm_bytes;
    let too_large = |what: String| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what}, above the limit of {max} bytes (`admin.max_upload_mb`)"),
        )
    };
    if media.eq_ignore_ascii_case("application/wasm") {
        let Query(options) = query.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("deploy options (reset_state, stream, delivery): {e}"),
            )
        })?;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = declared.filter(|&n| n > max as u64) {
            return Err(too_large(format!("the upload is {length} bytes")));
        }
        let bytes = axum::body::to_bytes(body, max)
            .await
            .map_err(|e| too_large(format!("the upload could not be read whole ({e})")))?;
        return Ok((Wasm::Uploaded(bytes), options));
    }
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type `{content_type}`: upload the .wasm as `application/wasm`, or name a file in admin.apps_dir as `application/json` {{\"path\": ...}}"),
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_DEPLOY_JSON)
        .await
        .map_err(|e| error(StatusCode::PAYLOAD_TOO_LARGE, format!("deploy body: {e}")))?;
    let request: DeployRequest = serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("deploy body: {e}")))?;
    let path = inside_apps_dir(plugins.apps_dir.as_deref(), &request.path)
        .map_err(|reason| error(StatusCode::FORBIDDEN, reason))?;
    Ok((Wasm::File(path), request))
}

/// The canonical path of a `.wasm` file inside the apps folder (a relative path is taken from
/// it), or why it is refused.
fn inside_apps_dir(
    apps_dir: Option<&std::path::Path>,
    path: &std::path::Path,
) -> Result<PathBuf, String> {
    let shown = path.display();
    let Some(dir) = apps_dir else {
        return Err(
            "deploy by path is off: admin.apps_dir is not set; upload the .wasm instead \
                    (`mysimbdp app deploy --path` does), or set admin.apps_dir"
                .into(),
        );
    };
    if path.as_os_str().is_empty() {
        return Err("no `path` given: name a .wasm file in admin.apps_dir, or upload it as application/wasm".into());
    }
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("admin.apps_dir {}: {e}", dir.display()))?;
    let full = dir
        .join(path)
        .canonicalize()
        .map_err(|e| format!("{shown}: {e}"))?;
    if !full.starts_with(&dir) {
        return Err(format!(
            "{shown} is outside admin.apps_dir {}",
            dir.display()
        ));
    }
    if full.extension().is_none_or(|e| e != "wasm") {
        return Err(format!("{shown} is not a .wasm file"));
    }
    if !full.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    Ok(full)
}

async fn deploy(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    query: Result<Query<DeployRequest>, QueryRejection>,
    body: Body,
) -> Response {
    if let Some(denied) = refuse(&admin, &headers, &tenant).await {
        return denied;
    }
    let (wasm, request) = match deploy_input(&admin.plugins, &headers, query, body).await {
        Ok(input) => input,
        Err(response) => return response,
    };
    // A component deployed by path may have an enrich manifest beside it, in place of the
    // `[enrich]` it carries: at a start and a hot swap alike.
    let (manifest, manifest_file) = match &wasm {
        Wasm::File(path) => match crate::enrich::EnrichManifest::beside(path) {
            Ok(manifest) => {
                let file = manifest
                    .is_some()
                    .then(|| crate::enrich::EnrichManifest::path_beside(path));
                (manifest, file)
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
        Wasm::Uploaded(_) => (None, None),
    };
    let engine = admin.plugins.engine.clone();
    let limits = admin.plugins.limits.clone();
    let load = move || match wasm {
        Wasm::File(path) => engine.load_keeping(&path, limits),
        Wasm::Uploaded(bytes) => {
            let shown = format!("the uploaded .wasm ({} bytes)", bytes.len());
            engine
                .load_bytes(&bytes, &shown, limits)
                .map(|app| (app, bytes.to_vec()))
        }
    };
    let (compiled, bytes) = match tokio::task::spawn_blocking(load).await {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let app = compiled.spec.name.to_string();
    let build = Build {
        bytes,
        manifest: manifest_file,
        version: compiled.spec.version.clone(),
    };
    let Some(handle) = admin.launcher.get(&tenant, &app) else {
        return start(&admin, &tenant, request, compiled, manifest, build).await;
    };
    if handle.ended() {
        // Its worker is gone: the new version starts where the failed one's last checkpoint
        // left off, on the same stream and with the same delivery.
        let request = DeployRequest {
            stream: Some(handle.stream.as_str().to_owned()),
            delivery: handle.delivery,
            ..request
        };
        return start(&admin, &tenant, request, compiled, manifest, build).await;
    }
    let reset_state = request.reset_state;
    let answer = ask_worker(&handle, |reply| Control::Deploy {
        app: Box::new(compiled),
        manifest,
        reset_state,
        reply,
    })
    .await;
    build.kept_after(&admin, answer, &handle).await
}

/// A deployed build as it is kept for the next start.
struct Build {
    bytes: Vec<u8>,
    /// The enrich manifest it was deployed with, beside its `.wasm`.
    manifest: Option<PathBuf>,
    version: String,
}

impl Build {
    /// Kept as the app's current build once `answer` says it runs on `handle`.
    async fn kept_after(self, admin: &Admin, answer: Response, handle: &AppHandle) -> Response {
        let placement = Placement {
            stream: handle.stream.as_str().to_owned(),
            delivery: handle.delivery,
            version: self.version,
            deployed_at_ms: super::recent::now_ms(),
        };
        let (tenant, app) = (handle.tenant.to_string(), handle.app.to_string());
        keeping(admin, answer, move |kept| {
            kept.keep(
                &tenant,
                &app,
                &self.bytes,
                self.manifest.as_deref(),
                &placement,
            )
        })
        .await
    }
}

/// Keeps what a take-over, start or removal changed (`keep`, once it succeeded), so that the
/// host's next start runs it. A failure to keep is logged and told in the answer; the change
/// itself stands.
async fn keeping(
    admin: &Admin,
    answer: Response,
    keep: impl FnOnce(&Deployments) -> Result<(), KeepError> + Send + 'static,
) -> Response {
    if !answer.status().is_success() {
        return answer;
    }
    let deployed = admin.deployed.clone();
    let problem = match tokio::task::spawn_blocking(move || keep(&deployed)).await {
        Ok(Ok(())) => return answer,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!(%problem, "a change the admin API made is not kept for the next start");
    let (parts, body) = answer.into_parts();
    let mut json: Value = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({})),
        Err(_) => json!({}),
    };
    json["warning"] = json!(format!(
        "done, but not kept for the next start (`admin.deployed_dir`): {problem}"
    ));
    Response::from_parts(parts, Body::from(json.to_string()))
}

async fn rollback(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
    body: Option<Json<RollbackRequest>>,
) -> Response {
    let handle = match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => handle,
        Err(response) => return *response,
    };
    let reset_state = body.map(|Json(b)| b.reset_state).unwrap_or_default();
    let answer = ask_worker(&handle, |reply| Control::Rollback { reset_state, reply }).await;
    keeping(&admin, answer, move |kept| kept.rolled_back(&tenant, &app)).await
}

/// A deploy of an app the tenant does not run yet: it starts on the given stream.
async fn start(
    admin: &Arc<Admin>,
    tenant: &str,
    request: DeployRequest,
    compiled: crate::plugin::CompiledApp,
    manifest: Option<crate::enrich::EnrichManifest>,
    build: Build,
) -> Response {
    let app = compiled.spec.name.to_string();
    let Some(stream) = request.stream else {
        return error(
            StatusCode::NOT_FOUND,
            format!("tenant `{tenant}` runs no app `{app}`: give the stream it reads (--stream) to start it"),
        );
    };
    let tenant_id = match TenantId::new(tenant) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("tenant `{tenant}`: {e}")),
    };
    let stream = match StreamName::new(&stream) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("stream `{stream}`: {e}")),
    };
    let launcher = admin.launcher.clone();
    let version = compiled.spec.version.clone();
    let delivery = request.delivery;
    let launched = tokio::task::spawn_blocking(move || {
        launcher.launch(&tenant_id, &stream, delivery, compiled, manifest)
    })
    .await;
    match launched {
        Ok(Ok(handle)) => {
            tracing::info!(%tenant, %app, %version, "new app started");
            let answer = (
                StatusCode::CREATED,
                Json(json!({
                    "result": format!("app {app} {version} started for tenant {tenant}"),
                    "status": describe(&handle),
                })),
            )
                .into_response();
            build.kept_after(admin, answer, &handle).await
        }
        Ok(Err(e)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Holds the app's input in Kafka until it is resumed.
async fn pause(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => ask_worker(&handle, |reply| Control::Pause { reply }).await,
        Err(response) => *response,
    }
}

/// Reads the app's input again after a pause.
async fn resume(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => ask_worker(&handle, |reply| Control::Resume { reply }).await,
        Err(response) => *response,
    }
}

/// Emits the app's open windows as final and unloads it.
async fn remove(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    let handle = match app_of(&admin, &headers, &tenant, &app).await {
        Ok(handle) => handle,
        Err(response) => return *response,
    };
    let answer = if handle.ended() {
        admin.launcher.forget(&tenant, &app);
        tracing::info!(%tenant, %app, "ended app unloaded");
        Json(json!({
            "result": format!(
                "app {app} had ended ({}); it is unloaded, and its last committed checkpoint \
                 stays for a later deploy",
                handle.status().last_error.unwrap_or_else(|| "stopped".into())
            ),
        }))
        .into_response()
    } else {
        let answer = ask_worker(&handle, |reply| Control::Remove { reply }).await;
        if answer.status().is_success() {
            admin.launcher.forget(&tenant, &app);
        }
        answer
    };
    keeping(&admin, answer, move |kept| kept.removed(&tenant, &app)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugins(apps_dir: Option<PathBuf>) -> Plugins {
        Plugins {
            engine: Arc::new(PluginEngine::new().unwrap()),
            limits: Limits {
                max_wasm_bytes: 1000,
                ..Limits::default()
            },
            apps_dir,
        }
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    fn no_query() -> Result<Query<DeployRequest>, QueryRejection> {
        Ok(Query(DeployRequest::default()))
    }

    async fn refusal(
        plugins: &Plugins,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let response = match deploy_input(plugins, headers, no_query(), Body::from(body)).await {
            Ok(_) => panic!("accepted"),
            Err(response) => response,
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn an_upload_is_read_up_to_its_limit() {
        let plugins = plugins(None);
        let wasm = headers("application/wasm");
        match deploy_input(&plugins, &wasm, no_query(), Body::from(vec![0u8; 1000])).await {
            Ok((Wasm::Uploaded(bytes), _)) => assert_eq!(bytes.len(), 1000),
            _ => panic!("a 1000-byte upload is read"),
        }
        let (status, reason) = refusal(&plugins, &wasm, vec![0u8; 1001]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(reason.contains("admin.max_upload_mb"), "{reason}");
        let (status, _) = refusal(&plugins, &headers("text/plain"), vec![]).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // What `mysimbdp app deploy` sends along.
        let uri: axum::http::Uri =
            "/apps/acme/deploy?reset_state=true&delivery=at-least-once&stream=orders"
                .parse()
                .unwrap();
        let Query(options) = Query::<DeployRequest>::try_from_uri(&uri).unwrap();
        assert!(options.reset_state);
        assert_eq!(options.stream.as_deref(), Some("orders"));
        assert_eq!(options.delivery, Delivery::AtLeastOnce);
    }

    #[tokio::test]
    async fn a_deploy_by_path_reads_only_wasm_files_in_the_apps_dir() {
        let json = headers("application/json");
        let body = |path: &str| serde_json::to_vec(&json!({ "path": path })).unwrap();
        let (status, reason) = refusal(&plugins(None), &json, body("/dev/zero")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(reason.contains("admin.apps_dir is not set"), "{reason}");

        let root = std::env::temp_dir().join(format!("mysimbdp-apps-{}", std::process::id()));
        let apps = root.join("apps");
        std::fs::create_dir_all(apps.join("dir.wasm")).unwrap();
        std::fs::write(apps.join("app.wasm"), b"\0asm").unwrap();
        std::fs::write(apps.join("notes.txt"), b"secret").unwrap();
        std::fs::write(root.join("outside.wasm"), b"\0asm").unwrap();
        let plugins = plugins(Some(apps.clone()));
        for (path, why) in [
            ("../outside.wasm", "outside admin.apps_dir"),
            ("/dev/zero", "outside admin.apps_dir"),
            ("notes.txt", "not a .wasm file"),
            ("dir.wasm", "not a regular file"),
            ("missing.wasm", "missing.wasm"),
        ] {
            let (status, reason) = refusal(&plugins, &json, body(path)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {reason}");
            assert!(reason.contains(why), "{path}: {reason}");
            assert!(!reason.contains("secret"), "{reason}");
        }
        match deploy_input(&plugins, &json, no_query(), Body::from(body("app.wasm"))).await {
            Ok((Wasm::File(path), _)) => {
                assert_eq!(path, apps.join("app.wasm").canonicalize().unwrap())
            }
            _ => panic!("app.wasm in the apps folder is accepted"),
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
