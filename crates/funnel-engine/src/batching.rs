//! Query embeddings in micro-batches: concurrent requests share one forward pass.
//!
//! A transformer run on one short query streams all its weights from memory (MiniLM:
//! 42 MB of f32), so a batch of several queries costs little more than one. Requests
//! queue; one worker thread takes everything queued when it becomes free, up to
//! `max_batch`, embeds it and answers each. It never waits for a batch to fill, so a lone
//! request is not delayed.

use std::sync::mpsc;

use crate::{QueryEmbedder, TextEmbedder};

struct Job {
    text: String,
    reply: mpsc::SyncSender<Result<Vec<f32>, String>>,
}

/// A [`TextEmbedder`] that batches the texts of concurrent callers.
pub struct BatchingEmbedder {
    name: String,
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for BatchingEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchingEmbedder").field("name", &self.name).finish()
    }
}

impl BatchingEmbedder {
    /// Starts the worker thread; it ends when this embedder is dropped.
    pub fn new(inner: QueryEmbedder, max_batch: usize) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let name = inner.name();
        std::thread::Builder::new().name("query-embedder".into()).spawn(move || {
            while let Ok(first) = jobs.recv() {
                let mut batch = vec![first];
                while batch.len() < max_batch.max(1) {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let texts: Vec<&str> = batch.iter().map(|job| job.text.as_str()).collect();
                let answer = match inner.embed(&texts, &mut |_| {}) {
                    Ok(vectors) if vectors.len() == batch.len() => Ok(vectors),
                    Ok(_) => Err("the embedder returned the wrong number of vectors".to_owned()),
                    Err(error) => Err(error),
                };
                match answer {
                    Ok(vectors) => batch.into_iter().zip(vectors).for_each(|(job, v)| drop(job.reply.send(Ok(v)))),
                    Err(error) => batch.into_iter().for_each(|job| drop(job.reply.send(Err(error.clone())))),
                }
            }
        })?;
        Ok(Self { name, queue })
    }
}

impl TextEmbedder for BatchingEmbedder {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn embed(&self, texts: &[&str], progress: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, String> {
        let stopped = || "the query embedding thread has stopped".to_owned();
        let replies = texts
            .iter()
            .map(|text| {
                let (reply, answer) = mpsc::sync_channel(1);
                self.queue.send(Job { text: (*text).to_owned(), reply }).map_err(|_| stopped())?;
                Ok(answer)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let vectors = replies.into_iter().map(|answer| answer.recv().map_err(|_| stopped())?).collect();
        progress(texts.len());
        vectors
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records the size of every batch it is given (holding the first until `open`); a
    /// text's vector is its length.
    struct Recording(Mutex<Vec<usize>>, AtomicBool);

    impl TextEmbedder for Recording {
        fn name(&self) -> String {
            "recording".into()
        }

        fn embed(&self, texts: &[&str], _: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, String> {
            self.0.lock().unwrap().push(texts.len());
            while !self.1.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if texts.contains(&"fail") {
                return Err("no".into());
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    #[test]
    fn concurrent_callers_share_batches_and_get_their_own_vectors() {
        let inner = Arc::new(Recording(Mutex::new(Vec::new()), AtomicBool::new(false)));
        let batching = Arc::new(BatchingEmbedder::new(inner.clone(), 8).unwrap());
        assert_eq!(batching.name(), "recording");
        let calling = std::sync::atomic::AtomicUsize::new(0);
        let answers: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..=6)
                .map(|n| {
                    let (batching, calling) = (batching.clone(), &calling);
                    scope.spawn(move || {
                        calling.fetch_add(1, Ordering::SeqCst);
                        batching.embed(&[&"x".repeat(n)], &mut |_| {}).unwrap()
                    })
                })
                .collect();
            // While the first batch is held, the other callers queue up: wait (on a loaded
            // machine threads start late) until all six are calling and one batch runs.
            let started = std::time::Instant::now();
            while (calling.load(Ordering::SeqCst) < 6 || inner.0.lock().unwrap().is_empty())
                && started.elapsed().as_secs() < 30
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            inner.1.store(true, Ordering::SeqCst);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (n, answer) in answers.iter().enumerate() {
            assert_eq!(answer, &[vec![(n + 1) as f32]], "each caller gets the vector of its own text");
        }
        let batches = inner.0.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 6);
        // One pass for the first caller(s) and one for those who queued behind them; all six
        // in one pass when they all queued before the worker woke (it happens under load).
        assert!((1..=2).contains(&batches.len()), "callers queued behind a pass share the next: {batches:?}");
        // Several texts from one caller, and an error reaching every caller of its batch.
        assert_eq!(batching.embed(&["ab", "abc"], &mut |_| {}).unwrap(), [vec![2.0], vec![3.0]]);
        assert_eq!(batching.embed(&["fail"], &mut |_| {}), Err("no".to_owned()));
    }
}
