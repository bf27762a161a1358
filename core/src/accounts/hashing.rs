//! Argon2 on a fixed set of threads, each keeping its own 19 MiB of hashing
//! memory for every hash it runs. A hash allocated afresh each time leaves its
//! freed blocks in the allocator's per-thread arenas, so a login storm spread
//! over the runtime's blocking threads grew the intake by hundreds of MiB that
//! never came back; here the memory is `threads * 19 MiB`, taken on a
//! thread's first hash and kept. Requests beyond the threads queue.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::Block;

use super::password::MEMORY_BLOCKS;

type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

pub struct HashingPool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: usize,
}

/// The pool's threads are gone (a thread could not start, or the pool was closed).
#[derive(Debug, thiserror::Error)]
#[error("the password hashing pool is not running")]
pub struct PoolClosed;

impl HashingPool {
    /// `threads` hashing threads (0: one per two cores, at least 1, at most
    /// 4: on 2 cores one thread hashed 56 logins/s and kept a login storm's
    /// intake under 64 MiB, where two made 112/s at 67 MiB).
    pub fn new(threads: usize) -> Self {
        let threads = match threads {
            0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).clamp(1, 4),
            n => n,
        };
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for i in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || run(&receiver)).is_ok();
            started += usize::from(spawned);
        }
        if started == 0 {
            tracing::error!("no password hashing thread could start");
        }
        Self { jobs: Mutex::new((started > 0).then_some(sender)), threads: started }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on a hashing thread with that thread's Argon2 memory.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PoolClosed> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = answer.send(f(memory));
        });
        {
            let jobs = self.jobs.lock().map_err(|_| PoolClosed)?;
            jobs.as_ref().ok_or(PoolClosed)?.send(job).map_err(|_| PoolClosed)?;
        }
        answered.await.map_err(|_| PoolClosed)
    }
}

/// One hashing thread: takes jobs until the pool is dropped. Its memory is
/// allocated at the first job, so an idle intake costs nothing.
fn run(receiver: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        if memory.is_empty() {
            memory = vec![Block::default(); MEMORY_BLOCKS];
        }
        // A panicking job loses its answer (the caller sees PoolClosed), not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::password::{self, Password};

    #[tokio::test]
    async fn hashes_run_on_the_pool_and_verify() {
        let pool = HashingPool::new(2);
        assert_eq!(pool.threads(), 2);
        let password = Password::parse("correct horse battery".into()).unwrap();
        let phc = pool.run(move |memory| password::hash_with(&password, memory)).await.unwrap().unwrap();
        let checks: Vec<_> = ["correct horse battery", "wrong horse battery", "correct horse battery"]
            .into_iter()
            .map(|candidate| {
                let phc = phc.clone();
                pool.run(move |memory| password::verify_with(candidate, &phc, memory))
            })
            .collect();
        let mut results = Vec::new();
        for check in checks {
            results.push(check.await.unwrap());
        }
        assert_eq!(results, [true, false, true]);
        let panicked = pool.run(|_| -> u8 { panic!("a faulty job") }).await;
        assert!(panicked.is_err());
        assert!(pool.run(|memory| memory.len()).await.unwrap() >= MEMORY_BLOCKS, "the thread lives on");
    }
}
