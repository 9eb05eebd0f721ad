//! The admin API's actions on apps: a deploy (a hot swap, or the start of an app the tenant
//! does not run yet), a rollback, a drain, a pause and resume, a removal; what a take-over,
//! start or removal changed is kept for the host's next start (`deployed`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::deployed::{Deployments, KeepError, Placement};
use super::server::{app_of, describe, error, refuse, Admin, Plugins};
use crate::app::{AppHandle, Control, Reply};
use crate::checkpoint::Delivery;
use crate::names::{StreamName, TenantId};

/// How long a deploy or rollback waits for the app's worker to reach a batch boundary.
const TAKE_OVER_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) async fn drain(
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
pub(super) struct DeployRequest {
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
pub(super) struct RollbackRequest {
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

pub(super) async fn deploy(
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

pub(super) async fn rollback(
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
        launcher.launch(&tenant_id, &stream, delivery, compiled, manifest, None)
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
pub(super) async fn pause(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    ask_app(&admin, &headers, &tenant, &app, |reply| Control::Pause {
        reply,
    })
    .await
}

/// Reads the app's input again after a pause.
pub(super) async fn resume(
    State(admin): State<Arc<Admin>>,
    headers: HeaderMap,
    Path((tenant, app)): Path<(String, String)>,
) -> Response {
    ask_app(&admin, &headers, &tenant, &app, |reply| Control::Resume {
        reply,
    })
    .await
}

/// Asks the app a request names (if its token may) and answers with what its worker says.
async fn ask_app(
    admin: &Admin,
    headers: &HeaderMap,
    tenant: &str,
    app: &str,
    control: impl FnOnce(Reply) -> Control,
) -> Response {
    match app_of(admin, headers, tenant, app).await {
        Ok(handle) => ask_worker(&handle, control).await,
        Err(response) => *response,
    }
}

/// Emits the app's open windows as final and unloads it.
pub(super) async fn remove(
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
    use crate::plugin::{Limits, PluginEngine};

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
