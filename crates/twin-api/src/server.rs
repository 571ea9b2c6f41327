//! The server: a tokio runtime of its own on 127.0.0.1, the token check in front of every
//! route, and a handle that stops it.

use crate::openai::ApiError;
use crate::routes;
use crate::token;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use twin_core::service::Twin;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port is taken, or binding failed otherwise.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// What failed.
        source: std::io::Error,
    },
    /// The token could not be read or made.
    #[error(transparent)]
    Token(#[from] token::TokenError),
    /// The runtime could not start.
    #[error("the API's runtime did not start: {0}")]
    Runtime(std::io::Error),
}

/// What every handler shares.
pub(crate) struct AppState {
    pub twin: Arc<Twin>,
    pub token: String,
}

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serve `twin` on 127.0.0.1 (never another address) at `port`, 0 for one the system
    /// picks, with the data folder's token (made on first start). Returns once it listens.
    pub fn start(twin: Arc<Twin>, port: u16) -> Result<Self, ServeError> {
        let token = token::load_or_create(twin.data_dir())?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ServeError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { port, source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // Handlers only wait: generation and embedding run on twin-core's own threads.
            .worker_threads(2)
            .thread_name("twin-api")
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let state = Arc::new(AppState {
            twin,
            token: token.clone(),
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("twin-api-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    use axum::serve::ListenerExt;
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        // Each streamed token is a small write: with Nagle's algorithm it
                        // waited for the client's delayed ACK (measured: 18 instead of 80
                        // tokens/s through the API).
                        Ok(l) => l.tap_io(|tcp| {
                            let _ = tcp.set_nodelay(true);
                        }),
                        Err(e) => {
                            tracing::error!("the API could not listen: {e}");
                            return;
                        }
                    };
                    let app = routes::router(Arc::clone(&state))
                        .layer(axum::middleware::from_fn_with_state(state, require_token));
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("the API stopped: {e}");
                    }
                });
                // Streams still open are dropped with the runtime, which cancels their
                // generation (see `routes::CancelOnDrop`).
                runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            })
            .map_err(ServeError::Runtime)?;
        tracing::info!(%addr, "local API listening");
        Ok(Self {
            addr,
            token,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients are given: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stop accepting requests, end the open ones, and return when the server is down.
    pub fn stop(mut self) {
        self.shut_down();
    }

    /// Block until the server stops by itself (it does not, short of an error): for
    /// `twin serve`, whose Ctrl-C ends the process.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn shut_down(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Every route needs `Authorization: Bearer <token>`.
async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if token::matches(t, &state.token) => Ok(next.run(request).await),
        _ => Err(ApiError::unauthorized()),
    }
}
