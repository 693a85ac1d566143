#pragma once

// One event loop on one thread (design.md section 9, Envoy's dispatcher): the
// component it runs (a ReplicatedStore) is touched only from this thread;
// other threads (gRPC handlers, transport senders) Post() work to it.
//
// Each turn: run every posted task, run the tick callback if a tick is due,
// then the after-batch callback once. Running Process() in after_batch is what
// turns everything posted in one turn into one Raft Ready and one fsync.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace shoal::transport {

class EventLoop {
 public:
  using Task = std::function<void()>;

  // Starts the loop thread. `on_tick` runs every `tick` (a tick missed because
  // the loop was busy is skipped, not run late in a burst: time appears to
  // slow down, which only delays elections). `after_batch` runs after each turn
  // that ran a task or a tick. Both run on the loop thread.
  EventLoop(std::chrono::milliseconds tick, Task on_tick, Task after_batch);
  // Stops and joins; tasks still queued are dropped.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Queues `task` to run on the loop thread. Thread-safe; never blocks on the
  // loop. Returns false (and drops the task) once the loop is stopping.
  bool Post(Task task);
  // Runs `task` on the loop and waits for it. Must not be called from the loop
  // thread. False if the loop stopped first.
  bool RunSync(const Task& task);
  // Stops the loop after the current turn and joins it. Idempotent; not from
  // the loop thread.
  void Stop();

 private:
  void Run();

  const std::chrono::milliseconds tick_;
  Task on_tick_;
  Task after_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace shoal::transport
