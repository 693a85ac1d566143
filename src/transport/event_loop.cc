#include "shoal/transport/event_loop.h"

#include <future>

namespace shoal::transport {

EventLoop::EventLoop(std::chrono::milliseconds tick, Task on_tick, Task after_batch,
                     EventLoopOptions options)
    : tick_(tick),
      on_tick_(std::move(on_tick)),
      after_batch_(std::move(after_batch)),
      options_(options) {
  thread_ = std::thread([this] { Run(); });
}

EventLoop::~EventLoop() { Stop(); }

bool EventLoop::Post(Task task) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) return false;
    if (!options_.run_inline || busy_ || !tasks_.empty()) {
      tasks_.push_back(std::move(task));
      // A running turn (on the loop thread or inline) picks the task up
      // itself, or hands it to the loop thread when it ends.
      if (!busy_) cv_.notify_one();
      return true;
    }
    busy_ = true;
  }
  RunInline(std::move(task));
  return true;
}

void EventLoop::RunInline(Task task) {
  for (int turn = 0;; ++turn) {
    if (task) task();
    after_batch_();
    std::deque<Task> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || tasks_.empty() || turn + 1 >= options_.max_inline_turns) {
        busy_ = false;
        // The loop thread takes over what is left; Stop() may be waiting.
        cv_.notify_all();
        return;
      }
      batch.swap(tasks_);
    }
    for (auto& t : batch) t();
    task = nullptr;
  }
}

bool EventLoop::RunSync(const Task& task) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  // The task holds the only reference to the promise, so a task dropped by
  // Stop() breaks the promise and the wait below ends.
  (void)Post([&task, done = std::move(done)] {
    task();
    done->set_value();
  });
  try {
    f.get();
    return true;
  } catch (const std::future_error&) {
    return false;
  }
}

void EventLoop::Stop() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    // An inline turn ends on its own; the component must not be touched after
    // Stop returns.
    cv_.wait(lock, [this] { return !busy_; });
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  tasks_.clear();
}

void EventLoop::Run() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point next_tick = Clock::now() + tick_;
  for (;;) {
    std::deque<Task> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, next_tick, [this] { return stopping_ || (!busy_ && !tasks_.empty()); });
      // A tick is due while an inline turn runs: wait for it to end.
      cv_.wait(lock, [this] { return stopping_ || !busy_; });
      if (stopping_) return;
      busy_ = true;
      batch.swap(tasks_);
    }
    bool worked = !batch.empty();
    for (auto& task : batch) task();
    Clock::time_point now = Clock::now();
    if (now >= next_tick) {
      on_tick_();
      worked = true;
      next_tick += tick_;
      if (next_tick <= now) next_tick = now + tick_;
    }
    if (worked) after_batch_();
    std::lock_guard<std::mutex> lock(mu_);
    busy_ = false;
    // Stop() may be waiting for the turn to end.
    if (stopping_) cv_.notify_all();
  }
}

}  // namespace shoal::transport
