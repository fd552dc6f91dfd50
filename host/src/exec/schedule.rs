//! Scheduling: runs jobs with dependencies among them on a pool of worker threads, each as soon as the jobs it
//! depends on are done (a ready queue fed by dependency counting), so independent branches overlap. A failed job
//! stops only the jobs below it; once the run is cancelled nothing new starts. It knows nothing of nodes, caches or
//! plugins: the evaluator says what a job's input is when it starts, what a worker does with it, and what to do
//! when a job ends.

use crossbeam::channel::unbounded;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use subspace_sdk::NodeError;

/// Stops a run: running nodes see it through `is_cancelled`, nothing new starts.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The most worker threads a run starts (more would only queue on the cores and risk running out of threads).
pub const MAX_WORKERS: usize = 64;

/// Why a job did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Skip {
    /// The job with this index, which it depends on directly or further up, failed.
    InputFailed(usize),
    /// The run was cancelled before the job could start.
    Cancelled,
    /// Its inputs never became ready (only when workers stopped early).
    NotReached,
}

/// How a job ended; every job ends exactly once.
pub(crate) enum Ending<O> {
    Done { output: O, seconds: f64 },
    Failed { error: NodeError },
    Skipped(Skip),
}

/// The scheduler's caller, on the calling thread.
pub(crate) trait Coordinator {
    /// What a worker gets to run a job.
    type Input: Send;
    /// What a job produces.
    type Output: Send;
    /// Job `job` is ready (everything it depends on is done) and about to go to a worker: its input.
    fn start(&mut self, job: usize) -> Self::Input;
    /// Job `job` ended. The jobs waiting on a `Done` job start after this returns, so it can publish the output.
    fn ended(&mut self, job: usize, ending: Ending<Self::Output>);
}

/// Hands a job's result back; a worker may go on with work of its own afterwards while the job's dependents
/// already start. Seconds are counted up to this call.
pub(crate) type Finish<'a, O> = &'a mut dyn FnMut(Result<O, NodeError>);

/// What a worker does with job `k` and its input; it reports through the [`Finish`] it is given.
pub(crate) type Work<'w, I, O> = dyn Fn(usize, I, Finish<'_, O>) + Sync + 'w;

/// Runs jobs `0..deps.len()`, where job `k` waits for the jobs `deps[k]`, on at most `workers` threads (clamped
/// to 1..=[`MAX_WORKERS`]); `work(k, input, finish)` runs on a worker and reports through `finish`. Jobs ready
/// at the start go to the workers even when `cancel` is already set (they see it themselves); after that, a job
/// that becomes ready once the run is cancelled ends as skipped.
pub(crate) fn run<C: Coordinator>(
    deps: &[Vec<usize>],
    workers: usize,
    cancel: &CancelToken,
    coordinator: &mut C,
    work: &Work<'_, C::Input, C::Output>,
) {
    let n = deps.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    // Per job: how many of its dependencies are not done yet; None once it started or ended.
    let mut waiting: Vec<Option<usize>> = Vec::with_capacity(n);
    for (k, d) in deps.iter().enumerate() {
        let mut d = d.clone();
        d.sort_unstable();
        d.dedup();
        for &j in &d {
            dependents[j].push(k);
        }
        waiting.push(Some(d.len()));
    }
    let mut ended = vec![false; n];
    fn end<C: Coordinator>(ended: &mut [bool], k: usize, ending: Ending<C::Output>, coordinator: &mut C) {
        ended[k] = true;
        coordinator.ended(k, ending);
    }

    let scoped = crossbeam::scope(|scope| {
        let (job_tx, job_rx) = unbounded::<(usize, C::Input)>();
        let (done_tx, done_rx) = unbounded::<(usize, Result<C::Output, NodeError>, f64)>();
        let mut spawned = 0;
        for w in 0..workers.clamp(1, MAX_WORKERS) {
            let (job_rx, done_tx) = (job_rx.clone(), done_tx.clone());
            let worker = scope.builder().name(format!("subspace-worker-{w}")).spawn(move |_| {
                for (k, input) in job_rx {
                    let t = Instant::now();
                    let mut sent = false;
                    let mut finish = |result: Result<C::Output, NodeError>| {
                        if !sent {
                            sent = true;
                            let _ = done_tx.send((k, result, t.elapsed().as_secs_f64()));
                        }
                    };
                    // A panic here is the host's own (nodes' panics are caught at the plugin call): the job fails,
                    // and the worker stays to take the next one, so the run never waits on a result that will not
                    // come.
                    let panicked = catch_unwind(AssertUnwindSafe(|| work(k, input, &mut finish))).is_err();
                    if !sent {
                        let why = if panicked {
                            "the host's worker thread failed while running this node"
                        } else {
                            "the host's worker gave no result for this node"
                        };
                        let _ = done_tx.send((k, Err(NodeError::internal(why)), t.elapsed().as_secs_f64()));
                    }
                }
            });
            // The system may refuse threads; run with those it gave rather than abort.
            if worker.is_ok() {
                spawned += 1;
            } else if spawned > 0 {
                break;
            }
        }
        drop(done_tx);
        if spawned == 0 {
            drop(job_tx);
            for k in 0..n {
                let error = NodeError::internal("the system refused to start a worker thread");
                end(&mut ended, k, Ending::Failed { error }, coordinator);
            }
            return;
        }

        let mut running = 0usize;
        let dispatch = |k: usize, coordinator: &mut C, running: &mut usize| {
            let input = coordinator.start(k);
            *running += 1;
            let _ = job_tx.send((k, input));
        };
        for (k, w) in waiting.iter_mut().enumerate() {
            if *w == Some(0) {
                *w = None;
                dispatch(k, coordinator, &mut running);
            }
        }
        while running > 0 {
            let Ok((k, result, seconds)) = done_rx.recv() else { break };
            running -= 1;
            match result {
                Ok(output) => {
                    end(&mut ended, k, Ending::Done { output, seconds }, coordinator);
                    for &j in &dependents[k] {
                        if let Some(c) = waiting[j].as_mut() {
                            *c -= 1;
                            // Once cancelled, a job that becomes ready stays waiting and ends skipped below, so
                            // every job gets an ending.
                            if *c == 0 && !cancel.is_cancelled() {
                                waiting[j] = None;
                                dispatch(j, coordinator, &mut running);
                            }
                        }
                    }
                }
                Err(error) => {
                    end(&mut ended, k, Ending::Failed { error }, coordinator);
                    // Everything below k is skipped.
                    let mut stack = dependents[k].clone();
                    while let Some(j) = stack.pop() {
                        if waiting[j].take().is_some() {
                            end(&mut ended, j, Ending::Skipped(Skip::InputFailed(k)), coordinator);
                            stack.extend(dependents[j].iter().copied());
                        }
                    }
                }
            }
        }
        drop(job_tx);
        let why = if cancel.is_cancelled() { Skip::Cancelled } else { Skip::NotReached };
        for (k, w) in waiting.iter_mut().enumerate() {
            if w.take().is_some() {
                end(&mut ended, k, Ending::Skipped(why.clone()), coordinator);
            }
        }
    });
    if scoped.is_err() {
        // A worker thread ended outside the guarded call: every job without an ending failed with it.
        for k in 0..n {
            if !ended[k] {
                let error = NodeError::internal("the host's worker thread failed while running this node");
                end(&mut ended, k, Ending::Failed { error }, coordinator);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::{bounded, Receiver, Sender};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Records what the scheduler did: jobs in the order they started, and each job's ending.
    #[derive(Default)]
    struct Log {
        started: Vec<usize>,
        endings: Vec<(usize, String)>,
    }

    impl Coordinator for Log {
        type Input = usize;
        type Output = usize;
        fn start(&mut self, job: usize) -> usize {
            self.started.push(job);
            job * 10
        }
        fn ended(&mut self, job: usize, ending: Ending<usize>) {
            let what = match ending {
                Ending::Done { output, .. } => format!("done {output}"),
                Ending::Failed { error } => format!("failed {}", error.message),
                Ending::Skipped(why) => format!("skipped {why:?}"),
            };
            self.endings.push((job, what));
        }
    }

    impl Log {
        fn ending(&self, job: usize) -> Vec<&str> {
            self.endings.iter().filter(|(j, _)| *j == job).map(|(_, e)| e.as_str()).collect()
        }
    }

    fn ok(k: usize, input: usize, finish: Finish<'_, usize>) {
        finish(Ok(input + k));
    }

    #[test]
    fn a_job_starts_only_after_everything_it_depends_on_is_done() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3, 4 alone; listed with a dependency twice.
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2, 2], vec![]];
        let mut log = Log::default();
        run(&deps, 3, &CancelToken::default(), &mut log, &ok);
        let at = |k: usize| log.started.iter().position(|&s| s == k).unwrap();
        let ended_at = |k: usize| log.endings.iter().position(|(j, _)| *j == k).unwrap();
        assert_eq!(log.started.len(), 5, "{:?}", log.started);
        for (k, d) in deps.iter().enumerate() {
            for &j in d {
                // Starts are recorded before endings of later jobs, so compare through the ending order.
                assert!(ended_at(j) < ended_at(k), "job {k} ended before its dependency {j}: {:?}", log.endings);
            }
        }
        assert!(at(0) < at(1) && at(0) < at(2) && at(1) < at(3) && at(2) < at(3), "{:?}", log.started);
        for k in 0..5 {
            assert_eq!(log.ending(k), vec![format!("done {}", k * 11)], "job {k}");
        }
    }

    #[test]
    fn independent_jobs_run_at_the_same_time() {
        // Each of the two jobs waits for the other to be running; one worker at a time would never get there.
        let (tx0, rx0) = bounded::<()>(1);
        let (tx1, rx1) = bounded::<()>(1);
        let pairs: Vec<(Sender<()>, Receiver<()>)> = vec![(tx1, rx0), (tx0, rx1)];
        let met = Mutex::new(Vec::new());
        let work = |k: usize, _: usize, finish: Finish<'_, usize>| {
            let (tell, wait) = &pairs[k];
            let _ = tell.send(());
            // A guard against hanging if the jobs were run one after the other, not a measurement.
            let saw_other = wait.recv_timeout(Duration::from_secs(30)).is_ok();
            met.lock().unwrap().push(saw_other);
            finish(Ok(k));
        };
        let mut log = Log::default();
        run(&[vec![], vec![]], 2, &CancelToken::default(), &mut log, &work);
        assert_eq!(*met.lock().unwrap(), vec![true, true]);
    }

    #[test]
    fn a_failure_skips_only_the_jobs_below_it() {
        // 0 fails; 1 depends on 0, 2 on 1, 3 on 2 and 4; 4 and 5 are independent of 0.
        let deps = vec![vec![], vec![0], vec![1], vec![2, 4], vec![], vec![4]];
        let work = |k: usize, input: usize, finish: Finish<'_, usize>| {
            finish(if k == 0 { Err(NodeError::internal("boom")) } else { Ok(input) })
        };
        let mut log = Log::default();
        run(&deps, 2, &CancelToken::default(), &mut log, &work);
        assert_eq!(log.ending(0), vec!["failed boom"]);
        for k in [1, 2, 3] {
            assert_eq!(log.ending(k), vec!["skipped InputFailed(0)"], "job {k}");
        }
        assert_eq!(log.ending(4), vec!["done 40"]);
        assert_eq!(log.ending(5), vec!["done 50"]);
        assert!(!log.started.contains(&1) && !log.started.contains(&3), "{:?}", log.started);
    }

    #[test]
    fn once_cancelled_nothing_new_starts_and_the_rest_is_skipped() {
        // 0 cancels the run while it works; 1 and 2 wait on it, 3 on 1.
        let cancel = CancelToken::default();
        let work = |k: usize, input: usize, finish: Finish<'_, usize>| {
            if k == 0 {
                cancel.cancel();
            }
            finish(Ok(input));
        };
        let mut log = Log::default();
        run(&[vec![], vec![0], vec![0], vec![1]], 2, &cancel, &mut log, &work);
        assert_eq!(log.started, vec![0]);
        assert_eq!(log.ending(0), vec!["done 0"], "a running job finishes");
        for k in 1..4 {
            assert_eq!(log.ending(k), vec!["skipped Cancelled"], "job {k}");
        }
    }

    #[test]
    fn work_after_finish_overlaps_the_dependents() {
        // Job 0 reports, then waits until job 1 (its dependent) has run: the dependent starts meanwhile.
        let (tx, rx) = bounded::<()>(1);
        let after = Mutex::new(None);
        let work = |k: usize, input: usize, finish: Finish<'_, usize>| {
            finish(Ok(input));
            if k == 0 {
                *after.lock().unwrap() = Some(rx.recv_timeout(Duration::from_secs(30)).is_ok());
            } else {
                let _ = tx.send(());
            }
        };
        let mut log = Log::default();
        run(&[vec![], vec![0]], 2, &CancelToken::default(), &mut log, &work);
        assert_eq!(*after.lock().unwrap(), Some(true));
        assert_eq!(log.ending(1), vec!["done 10"]);
    }

    #[test]
    fn a_panicking_worker_fails_its_job_and_the_run_goes_on() {
        let work = |k: usize, input: usize, finish: Finish<'_, usize>| {
            if k == 1 {
                panic!("host bug");
            }
            finish(Ok(input));
        };
        let silent = |k: usize, _: usize, _: Finish<'_, usize>| {
            let _ = k;
        };
        let mut log = Log::default();
        // One worker: it must survive job 1's panic to run job 2.
        run(&[vec![], vec![0], vec![]], 1, &CancelToken::default(), &mut log, &work);
        assert_eq!(log.ending(1), vec!["failed the host's worker thread failed while running this node"]);
        assert_eq!(log.ending(2), vec!["done 20"]);
        let mut log = Log::default();
        run(&[vec![]], 1, &CancelToken::default(), &mut log, &silent);
        assert_eq!(log.ending(0), vec!["failed the host's worker gave no result for this node"]);
    }
}
