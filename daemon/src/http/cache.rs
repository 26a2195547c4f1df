//! Rendered answers kept for reuse while nothing they show can have changed.
//!
//! Load balancers ask `/readyz` and `/health` thousands of times a second, and
//! Prometheus sends `/metrics` the same question every few seconds from several
//! replicas; rebuilding each answer from the board costs far more than the
//! network does. An answer is reused only while its key (board generation,
//! clock second, settings it depends on) is unchanged and its deadline (the
//! first instant a shown result turns stale) has not passed, so a result that
//! goes stale changes the answer without any new result arriving.

use std::io::Write as _;
use std::sync::{Arc, OnceLock, RwLock};

use hyper::body::Bytes;
use tokio::time::Instant;
use warp::http::StatusCode;

/// An answer as sent, with its gzip form made on the first request for it.
#[derive(Debug)]
pub(super) struct Rendered {
    /// HTTP status.
    pub(super) status: StatusCode,
    /// `Content-Type`.
    pub(super) content_type: &'static str,
    /// The body.
    pub(super) body: Bytes,
    compressible: bool,
    gzip: OnceLock<Bytes>,
}

/// Bodies smaller than this are sent as they are: gzip would save little.
const GZIP_MIN_BYTES: usize = 1024;

impl Rendered {
    /// An answer; `gzip`: offered compressed when the body is large enough.
    pub(super) fn new(
        status: StatusCode,
        content_type: &'static str,
        body: Vec<u8>,
        gzip: bool,
    ) -> Self {
        Rendered {
            status,
            content_type,
            compressible: gzip && body.len() >= GZIP_MIN_BYTES,
            body: Bytes::from(body),
            gzip: OnceLock::new(),
        }
    }

    /// Whether a gzip form is offered (the answer then varies by encoding).
    pub(super) fn compressible(&self) -> bool {
        self.compressible
    }

    /// The body gzip-compressed, made once per rendering; `None` when not offered.
    pub(super) fn gzip(&self) -> Option<&Bytes> {
        let large = self.body.len() >= LARGE_BODY_BYTES;
        self.compressible.then(|| {
            self.gzip
                .get_or_init(|| off_workers_if(large, || compress(&self.body)))
        })
    }
}

/// Bodies this large take tens of milliseconds or more to compress.
const LARGE_BODY_BYTES: usize = 1 << 20;

/// Runs `work` off the async workers when `large` (on a multi-threaded
/// runtime; elsewhere in place), so a rendering of seconds holds up neither
/// other requests nor the checks.
pub(super) fn off_workers_if<T>(large: bool, work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if large && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

fn compress(body: &[u8]) -> Bytes {
    // Level 1: the text compresses about 8-fold at it, at a fraction of the
    // CPU of the default level; the answer is rendered once and sent often.
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).expect("writing to a Vec");
    Bytes::from(encoder.finish().expect("writing to a Vec"))
}

struct Slot<K> {
    key: K,
    valid_until: Option<Instant>,
    answer: Arc<Rendered>,
}

/// One cached answer, replaced when its key changes or its deadline passes.
pub(super) struct AnswerCache<K> {
    slot: RwLock<Option<Slot<K>>>,
}

impl<K> std::fmt::Debug for AnswerCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerCache")
    }
}

impl<K> Default for AnswerCache<K> {
    fn default() -> Self {
        AnswerCache {
            slot: RwLock::new(None),
        }
    }
}

impl<K: PartialEq + Copy> AnswerCache<K> {
    /// The answer for `key` at `now`: the cached one while it is still valid,
    /// else a fresh one from `render`, which also says until when it holds.
    pub(super) fn get_or_render(
        &self,
        key: K,
        now: Instant,
        render: impl FnOnce() -> (Rendered, Option<Instant>),
    ) -> Arc<Rendered> {
        let valid = |slot: &Slot<K>| slot.key == key && slot.valid_until.is_none_or(|d| now < d);
        if let Some(slot) = &*self.slot.read().unwrap_or_else(|e| e.into_inner())
            && valid(slot)
        {
            return Arc::clone(&slot.answer);
        }
        // Rendered outside the lock: concurrent misses may render twice,
        // which is cheaper than making every reader wait.
        let (answer, valid_until) = render();
        let answer = Arc::new(answer);
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Slot {
            key,
            valid_until,
            answer: Arc::clone(&answer),
        });
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::time::Duration;

    use super::*;

    fn answer(text: &str) -> Rendered {
        Rendered::new(
            StatusCode::OK,
            "text/plain",
            text.as_bytes().to_vec(),
            false,
        )
    }

    #[test]
    fn reuses_an_answer_until_its_key_changes() {
        let cache = AnswerCache::default();
        let now = Instant::now();
        let first = cache.get_or_render(1u64, now, || (answer("one"), None));
        let again = cache.get_or_render(1u64, now, || (answer("two"), None));
        assert_eq!(again.body, first.body);
        let changed = cache.get_or_render(2u64, now, || (answer("two"), None));
        assert_eq!(&changed.body[..], b"two");
    }

    #[test]
    fn an_answer_past_its_deadline_is_rendered_again() {
        let cache = AnswerCache::default();
        let now = Instant::now();
        let deadline = now + Duration::from_secs(1);
        cache.get_or_render(1u64, now, || (answer("fresh"), Some(deadline)));
        let before = cache.get_or_render(1u64, deadline - Duration::from_millis(1), || {
            (answer("stale"), None)
        });
        assert_eq!(&before.body[..], b"fresh");
        let after = cache.get_or_render(1u64, deadline, || (answer("stale"), None));
        assert_eq!(&after.body[..], b"stale");
    }

    #[test]
    fn large_bodies_get_a_gzip_form_that_decodes_to_the_body() {
        let text = "warden_check_up{check=\"db\",plugin=\"postgres\"} 1\n".repeat(100);
        let rendered = Rendered::new(
            StatusCode::OK,
            "text/plain",
            text.clone().into_bytes(),
            true,
        );
        let gzip = rendered.gzip().expect("a large body is compressed").clone();
        assert!(gzip.len() < text.len() / 4, "{} bytes", gzip.len());
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .expect("valid gzip");
        assert_eq!(decoded, text);
        let small = Rendered::new(StatusCode::OK, "text/plain", b"ok".to_vec(), true);
        assert!(small.gzip().is_none());
    }
}
