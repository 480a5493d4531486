//! What a transfer's tracing span labels, in a test binary of its own: `tracing` caches which
//! callsites a subscriber wants process-wide, so tests running beside this one on other threads
//! (without a subscriber) could make it miss the events it looks for.

mod support;

use baton_transfer::JobEnd;
use support::*;

/// Log lines written while the test's subscriber is the thread's default.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread runs the job and everything else: while the job waits out a Retry-After, the
// thread runs another task. That task's events must not be labelled as the transfer's.
#[tokio::test(flavor = "current_thread")]
async fn the_transfer_span_labels_the_transfer_and_nothing_else_on_its_thread() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let w = world(Setup::default(), None).await;
    w.script.add("$everything", Fault::Status(429, Some(1)), 1);
    let elsewhere = tokio::spawn(async {
        loop {
            tracing::info!("meanwhile, elsewhere");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    elsewhere.abort();

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let other: Vec<&str> = text.lines().filter(|l| l.contains("meanwhile, elsewhere")).collect();
    assert!(other.len() >= 10, "the other task ran while the job waited: {other:?}");
    let labelled: Vec<&&str> = other.iter().filter(|l| l.contains("transfer{")).collect();
    assert!(labelled.is_empty(), "another task's events carry the transfer's span: {labelled:?}");
    assert!(
        text.lines().any(|l| l.contains("transfer{id=t1") && l.contains("retrying")),
        "the job's own retry is labelled with its transfer:\n{text}"
    );
}
