#include "shoal/transport/event_loop.h"

#include <future>

namespace shoal::transport {

EventLoop::EventLoop(std::chrono::milliseconds tick, Task on_tick, Task after_batch)
    : tick_(tick), on_tick_(std::move(on_tick)), after_batch_(std::move(after_batch)) {
  thread_ = std::thread([this] { Run(); });
}

EventLoop::~EventLoop() { Stop(); }

bool EventLoop::Post(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
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
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
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
      cv_.wait_until(lock, next_tick, [this] { return stopping_ || !tasks_.empty(); });
      if (stopping_) return;
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
  }
}

}  // namespace shoal::transport
