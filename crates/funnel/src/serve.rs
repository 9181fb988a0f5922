use std::sync::Arc;
use std::time::Duration;

use funnel_engine::EngineConfig;
use funnel_server::{AppState, ServeOptions};
use funnel_store::DataDir;

use crate::cli::ServeArgs;

pub fn run(data: &DataDir, config: EngineConfig, args: &ServeArgs) -> anyhow::Result<()> {
    if !(args.reload_secs > 0.0 && args.reload_secs.is_finite()) {
        anyhow::bail!("--reload-secs must be a positive number of seconds");
    }
    let models = crate::train::serving_models(&config);
    let state = Arc::new(AppState::open(data, config, models)?);
    if state.snapshot_id().is_none() {
        tracing::warn!("no snapshot yet: queries answer 503 until `funnel train` publishes one");
    }
    let options = ServeOptions {
        addr: args.addr,
        reload_every: Duration::from_secs_f64(args.reload_secs),
        max_body_bytes: args.max_body_mb << 20,
    };
    serve_until_signal(state, options)
}

pub fn serve_until_signal(state: Arc<AppState>, options: ServeOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = async {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutting down");
        };
        funnel_server::serve(state, options, shutdown).await
    })?;
    Ok(())
}
