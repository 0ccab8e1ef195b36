//! Jobs: the long work of a request, run on a blocking thread, visible and cancellable by id.
//!
//! A job holds one of `max_jobs` slots from before its request's body is read until its work
//! ends; without a free slot a request gets 429. Its progress comes from the core's
//! [`Progress`] callbacks, and its cancel flag reaches the core through [`Progress::cancelled`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use orgport_core::progress::Progress;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ErrorBody};
use crate::App;
use utoipa::ToSchema;

/// Finished jobs kept for `GET /api/jobs/{id}`; the oldest are forgotten first.
const KEPT: usize = 256;

pub(crate) struct Jobs {
    slots: Arc<Semaphore>,
    max: usize,
    jobs: Mutex<Known>,
}

/// Jobs by id, and their ids oldest first.
#[derive(Default)]
struct Known {
    by_id: HashMap<String, Arc<Job>>,
    order: VecDeque<String>,
}

/// A slot: held while a job's work runs.
pub(crate) struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Jobs {
    pub(crate) fn new(max: usize) -> Jobs {
        Jobs { slots: Arc::new(Semaphore::new(max)), max, jobs: Mutex::default() }
    }

    /// A free slot, or 429.
    pub(crate) fn slot(&self) -> Result<Slot, ApiError> {
        self.slots.clone().try_acquire_owned().map(Slot).map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{} job(s) are running, as many as `--max-jobs` allows; try again later", self.max),
            )
        })
    }

    /// A new job, queued.
    pub(crate) fn create(&self, kind: &'static str) -> Arc<Job> {
        let id = hex::encode(rand::random::<[u8; 8]>());
        let job = Arc::new(Job { id: id.clone(), kind, state: Mutex::new(State::Queued), progress: JobProgress::default() });
        let mut guard = self.jobs.lock().expect("not poisoned");
        let Known { by_id: map, order } = &mut *guard;
        map.insert(id.clone(), job.clone());
        order.push_back(id);
        while order.len() > KEPT {
            // Forget the oldest finished job; running ones stay.
            match order.iter().position(|id| map.get(id).is_none_or(|j| j.finished())) {
                Some(i) => {
                    let old = order.remove(i).expect("an index of the queue");
                    map.remove(&old);
                }
                None => break,
            }
        }
        job
    }

    fn get(&self, id: &str) -> Result<Arc<Job>, ApiError> {
        let guard = self.jobs.lock().expect("not poisoned");
        guard.by_id.get(id).cloned().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no job `{id}`")))
    }
}

#[derive(Clone)]
enum State {
    Queued,
    Running,
    Done(Value),
    Failed(ApiError),
    Cancelled,
}

pub(crate) struct Job {
    pub(crate) id: String,
    kind: &'static str,
    state: Mutex<State>,
    progress: JobProgress,
}

impl Job {
    /// Runs `work` (on the calling, blocking thread), recording its outcome.
    pub(crate) fn run(&self, work: impl FnOnce(&JobProgress) -> Result<Value, ApiError>) -> Result<Value, ApiError> {
        if self.progress.cancelled() {
            self.set(State::Cancelled);
            return Err(orgport_core::Error::Cancelled.into());
        }
        self.set(State::Running);
        let result = work(&self.progress);
        self.set(match &result {
            Ok(report) => State::Done(report.clone()),
            Err(_) if self.progress.cancelled() => State::Cancelled,
            Err(e) => State::Failed(e.clone()),
        });
        result
    }

    pub(crate) fn cancel(&self) {
        self.progress.cancel.store(true, Ordering::Relaxed);
    }

    fn set(&self, state: State) {
        *self.state.lock().expect("not poisoned") = state;
    }

    fn finished(&self) -> bool {
        matches!(*self.state.lock().expect("not poisoned"), State::Done(_) | State::Failed(_) | State::Cancelled)
    }

    fn describe(&self) -> JobView {
        let p = &self.progress;
        let (phase, table) = p.step.lock().map(|s| s.clone()).unwrap_or_default();
        let state = self.state.lock().expect("not poisoned").clone();
        let mut view = JobView {
            job: self.id.clone(),
            kind: self.kind,
            state: "",
            phase,
            table,
            rows: p.rows.load(Ordering::Relaxed),
            files: p.files.load(Ordering::Relaxed),
            bytes: p.bytes.load(Ordering::Relaxed),
            cancel_requested: p.cancelled(),
            report: None,
            error: None,
            status: None,
        };
        view.state = match state {
            State::Queued => "queued",
            State::Running => "running",
            State::Done(report) => {
                view.report = Some(report);
                "done"
            }
            State::Failed(e) => {
                (view.error, view.status) = (Some(e.message), Some(e.status.as_u16()));
                "failed"
            }
            State::Cancelled => "cancelled",
        };
        view
    }
}

/// A job, as `GET /api/jobs/{id}` shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobView {
    /// The job's id.
    job: String,
    /// `export` or `import`.
    kind: &'static str,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    state: &'static str,
    /// The current step (such as `rows` or `files`), and the table it works on.
    phase: String,
    table: String,
    /// Rows done in the current step.
    rows: u64,
    /// Files copied or checked, and their bytes.
    files: u64,
    bytes: u64,
    cancel_requested: bool,
    /// Once `done`: the import's report (what `POST /api/orgs/import` answers), or the export's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    report: Option<Value>,
    /// Once `failed`: what the request would have answered, and with which status.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

/// `GET /api/jobs`.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobList {
    /// Newest first.
    jobs: Vec<JobView>,
}

/// Cancels its job when dropped armed: a synchronous request whose client went away.
pub(crate) struct CancelOnDrop(pub(crate) Option<Arc<Job>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            job.cancel();
        }
    }
}

/// What the core reports, kept for `GET /api/jobs/{id}`: the current step, rows done in it,
/// files and their bytes done in all.
#[derive(Default)]
pub(crate) struct JobProgress {
    step: Mutex<(String, String)>,
    in_files: AtomicBool,
    rows: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    cancel: AtomicBool,
}

impl Progress for JobProgress {
    fn begin(&self, phase: &str, table: &str, _total: Option<u64>) {
        if let Ok(mut step) = self.step.lock() {
            if step.0 != phase {
                self.rows.store(0, Ordering::Relaxed);
            }
            *step = (phase.to_string(), table.to_string());
        }
        self.in_files.store(phase.contains("files"), Ordering::Relaxed);
    }

    fn rows(&self, n: u64) {
        let counter = if self.in_files.load(Ordering::Relaxed) { &self.files } else { &self.rows };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// `GET /api/jobs/{id}`.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobView), (status = 404, description = "No such job (or forgotten: the oldest finished jobs are)", body = ErrorBody)))]
pub(crate) async fn show(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(app.jobs.get(&id)?.describe()))
}

/// `GET /api/jobs`: every job kept, newest first, as `GET /api/jobs/{id}` describes each.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", responses((status = 200, description = "Every job kept", body = JobList)))]
pub(crate) async fn list(axum::extract::State(app): axum::extract::State<Arc<App>>) -> Json<JobList> {
    let jobs: Vec<Arc<Job>> = {
        let guard = app.jobs.jobs.lock().expect("not poisoned");
        guard.order.iter().rev().filter_map(|id| guard.by_id.get(id).cloned()).collect()
    };
    Json(JobList { jobs: jobs.iter().map(|j| j.describe()).collect() })
}

/// `DELETE /api/jobs/{id}`: 202 while the job stops (it ends `cancelled`, the target as it was),
/// 409 when it has finished already.
#[utoipa::path(delete, path = "/api/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 202, description = "The job is stopping; it ends `cancelled`, the target as it was", body = JobView),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has finished already", body = ErrorBody)))]
pub(crate) async fn cancel(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let job = app.jobs.get(&id)?;
    if job.finished() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("job `{id}` has finished already")));
    }
    job.cancel();
    Ok((StatusCode::ACCEPTED, Json(job.describe())))
}

/// A request's `timeout` (`"30s"`, `"10m"`, `"1m30s"`, `"500ms"`: Go's duration syntax, as
/// ZITADEL takes it): past it, the request's job is cancelled through [`Progress::cancelled`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timeout(pub(crate) Duration);

/// A timeout running for a job; stops when dropped.
pub(crate) struct Armed {
    after: Duration,
    fired: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Timeout {
    pub(crate) fn parse(text: &str) -> Result<Timeout, String> {
        let bad = || format!("`{text}` is not a duration such as \"30s\", \"10m\" or \"1m30s\"");
        let mut rest = text.trim();
        let mut total = 0f64;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
            let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let seconds = match &rest[..unit] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += n * seconds;
            rest = &rest[unit..];
        }
        match Duration::try_from_secs_f64(total) {
            Ok(d) if !d.is_zero() => Ok(Timeout(d)),
            _ => Err(format!("`{text}`: a timeout must be longer than zero")),
        }
    }

    /// Cancels `job` once the timeout has passed.
    pub(crate) fn arm(self, job: Arc<Job>) -> Armed {
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(self.0).await;
            flag.store(true, Ordering::Relaxed);
            job.cancel();
        });
        Armed { after: self.0, fired, task }
    }

    /// A job's result, as 504 when its timeout cancelled it.
    pub(crate) fn judge<T>(armed: Option<Armed>, result: Result<T, ApiError>) -> Result<T, ApiError> {
        match (armed, result) {
            (Some(armed), Err(e)) if armed.fired.load(Ordering::Relaxed) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the work did not finish within its timeout of {:?} and was cancelled; nothing was written ({})",
                    armed.after, e.message
                ),
            )),
            (_, result) => result,
        }
    }
}
