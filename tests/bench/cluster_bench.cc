// shoal_cluster_bench: the cluster end to end (issue 4, item 10). Real
// `shoal daemon` processes on loopback with the sim executor, driven through
// the `shoal` CLI and the control API, and shoal_sim_nodes hosting the
// simulated worker nodes. Modes:
//
//   shoal_cluster_bench deploy [--nodes 1000] [--sim-procs 1] [--services 100]
//                              [--replicas 1000] [--runs 1] [--perf DIR]
//       3 managers (cluster init + 2 joins through the CLI), drained so that
//       tasks go to the sim nodes; `--nodes` simulated nodes in `--sim-procs`
//       shoal_sim_nodes processes; then `shoal deploy --detach` of a stack of
//       services x replicas, polled through ListServices/ListTasks on a
//       follower until every task runs. Prints the time to accepted, to all
//       placed (every task has a node and is at least ASSIGNED) and to all
//       running, tasks/s, the CPU seconds each process used meanwhile, and
//       the same for 10 s of steady state afterwards. --scale: deploy the
//       services with 0 replicas first (untimed) and start the clock at
//       concurrent ScaleService calls (no dry run in the write path).
//       --poll-leader polls the leader instead. --perf DIR: `perf record
//       --call-graph dwarf` of the leader and the first sim process, during
//       the deploy and during the steady state.
//   shoal_cluster_bench scheduler [--nodes 1000] [--services 100] [--replicas 1000]
//       The same input in process: the deploy's transaction (BuildDeploy), the
//       deploy's dry-run placement, orchestrator::Reconcile with
//       max_mutations unlimited and with the manager's budget (10,000, applied
//       pass after pass as the leader does: every pass full, then follow-ups
//       over the services left unfinished or touched), scheduler::Schedule
//       alone, and batches of 1,000 RUNNING reports each followed by a full
//       pass and by a pass over the services they touched.
//   shoal_cluster_bench worker-loss [--workers 10] [--services 10] [--replicas 100] [--runs 5]
//                                   [--sim-procs 2 --nodes N]
//       3 drained managers and `--workers` worker daemons (sim executor), or
//       with --sim-procs P > 1, N sim nodes in P processes. After the stack
//       runs, one worker process is killed -9 and the clock runs until every
//       slot has a running task on a live node. Fresh cluster per run; median.
//   shoal_cluster_bench leader-loss [--services 1] [--replicas 30] [--runs 5] [--nodes 0]
//       3 managers running a small stack (or drained, with --nodes sim nodes);
//       the leader is killed -9, and ScaleService calls are sent to the two
//       survivors every 50 ms (overlapping, each with a 10 s deadline) until
//       one is accepted. Fresh cluster per run; median.
//
// Common flags: --dir BASE (default /tmp), --keep (leave the data dirs),
// --timeout S (per wait, default 900), --poll-ms MS (default 100).
// Logs of the daemons and sim processes go to <dir>/shoal-bench-*/<name>.log.
// Every child dies with the benchmark (PDEATHSIG; the sim processes also
// when their stdin closes). Results and analysis: docs/performance.md,
// "Cluster (issue 4)".

#include "cluster_bench.h"

namespace cluster_bench {
int Deploy(const Options& o);
int Scheduler(const Options& o);
int WorkerLoss(const Options& o);
int LeaderLoss(const Options& o);
}  // namespace cluster_bench

using namespace cluster_bench;  // NOLINT: one program

int main(int argc, char** argv) {
  Options o;
  if (!ParseFlags(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: shoal_cluster_bench deploy|scheduler|worker-loss|leader-loss [flags]\n"
                 "  (see the comment at the top of tests/bench/cluster_bench.cc)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (o.runs == 0) o.runs = 1;
  if (o.mode == "deploy") return Deploy(o);
  if (o.mode == "scheduler") return Scheduler(o);
  if (o.mode == "worker-loss") return WorkerLoss(o);
  if (o.mode == "leader-loss") return LeaderLoss(o);
  std::fprintf(stderr, "unknown mode %s\n", o.mode.c_str());
  return 2;
}
