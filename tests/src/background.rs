//! A client under test on its own thread and tokio runtime. The test reads the state the client
//! builds through a mutex; dropping the handle stops the client and joins its thread, so a
//! failed assertion never leaves a client running.

use std::future::Future;
use std::sync::{Arc, Mutex};

pub struct Background<S> {
    state: Arc<Mutex<S>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S: Default + Send + 'static> Background<S> {
    /// Runs `task` with the shared state until it returns or the handle is dropped. If it
    /// fails, `failed` records the error in the state (the test asserts on it).
    pub fn spawn<F, Fut>(task: F, failed: fn(&mut S, anyhow::Error)) -> Background<S>
    where
        F: FnOnce(Arc<Mutex<S>>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let state = Arc::new(Mutex::new(S::default()));
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let outcome = tokio::select! {
                    r = task(st.clone()) => r,
                    _ = stop_rx => Ok(()),
                };
                if let Err(e) = outcome {
                    failed(&mut st.lock().unwrap(), e);
                }
            });
        });
        Background {
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl<S> Background<S> {
    pub fn with<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

impl<S> Drop for Background<S> {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `["public.t", ...]` as `(schema, table)` pairs.
pub fn parse_tables(tables: &[&str]) -> Vec<(String, String)> {
    tables
        .iter()
        .map(|t| {
            let (s, n) = t.split_once('.').expect("schema.table");
            (s.to_string(), n.to_string())
        })
        .collect()
}
