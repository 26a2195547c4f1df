//! Process signals: SIGTERM and SIGINT stop the daemon gracefully, and a
//! second one exits at once.

/// Resolves on the first SIGTERM or SIGINT; arms an immediate exit on the next.
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};

    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down; send again to exit at once");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

/// A channel that receives one message per SIGHUP.
pub fn reloads() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    tracing::info!(target: "warden::security", signal = "SIGHUP", "reload requested");
                    if send.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        Err(error) => tracing::error!(%error, "cannot handle SIGHUP; reload needs a restart"),
    }
    receive
}
