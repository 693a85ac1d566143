#pragma once

// One event loop on one thread (design.md section 9, Envoy's dispatcher): the
// component it runs (a ReplicatedStore) is touched only by one thread at a
// time; other threads (gRPC handlers, transport callbacks) Post() work to it.
//
// Each turn: run every posted task, run the tick callback if a tick is due,
// then the after-batch callback once. Running Process() in after_batch is what
// turns everything posted in one turn into one Raft Ready and one fsync.
//
// With EventLoopOptions::run_inline, a Post() that finds the loop idle runs
// the turn itself, on the posting thread, instead of waking the loop thread:
// one thread hand-off less (tens of microseconds each on a busy machine) for
// a request that arrives while nothing else is going on. Turns stay one at a
// time, so the component still sees one thread at a time, but not always the
// same one, and the posting thread is held for the whole turn (after_batch
// included, e.g. an fsync): callers whose threads must not block that long
// leave it off.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace shoal::transport {

struct EventLoopOptions {
  // Let Post() run a turn on the posting thread when the loop is idle (above).
  bool run_inline = false;
  // An inline runner goes on with work posted meanwhile for at most this many
  // turns, then wakes the loop thread for the rest.
  int max_inline_turns = 8;
};

class EventLoop {
 public:
  using Task = std::function<void()>;

  // Starts the loop thread. `on_tick` runs every `tick` (a tick missed because
  // the loop was busy is skipped, not run late in a burst: time appears to
  // slow down, which only delays elections). `after_batch` runs after each turn
  // that ran a task or a tick. Ticks run on the loop thread; tasks and
  // after_batch too unless run_inline lets a posting thread run them.
  EventLoop(std::chrono::milliseconds tick, Task on_tick, Task after_batch,
            EventLoopOptions options = {});
  // Stops and joins; tasks still queued are dropped.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Queues `task` to run on the loop. Thread-safe; never blocks on the loop,
  // except that with run_inline an idle loop's turn runs right here. Returns
  // false (and drops the task) once the loop is stopping.
  bool Post(Task task);
  // Runs `task` on the loop and waits for it. Must not be called from a task
  // or a callback of the loop. False if the loop stopped first.
  bool RunSync(const Task& task);
  // Stops the loop after the current turn (waiting for an inline one too) and
  // joins it. Idempotent; not from the loop.
  void Stop();

 private:
  void Run();
  // Runs the turns of an inline runner, which has set busy_.
  void RunInline(Task task);

  const std::chrono::milliseconds tick_;
  Task on_tick_;
  Task after_batch_;
  const EventLoopOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  bool busy_ = false;  // a turn is running, on the loop thread or inline
  std::thread thread_;
};

}  // namespace shoal::transport
