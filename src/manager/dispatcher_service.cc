// The Dispatcher service: agents' heartbeats and assignment long polls, handed
// to the leader's dispatcher on the manager's loop, and repeated heartbeats
// answered from a cache off that loop.

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon_internal.h"
#include "shoal/manager/limits.h"

namespace shoal::manager {
namespace {

class DispatcherService final : public v1::Dispatcher::CallbackService {
 public:
  explicit DispatcherService(Daemon::Impl* d) : d_(d) {}

  // A heartbeat with statuses or a description (or the first of a session,
  // or after anything its reply depends on changed) goes to the dispatcher
  // on the manager's loop. A repeated one (same session, nothing to report:
  // the steady state of every agent, a thousand a second) is answered here
  // from the reply the dispatcher last gave that session, while the
  // dispatcher's reply epoch says that reply still holds; the loop only
  // learns, batched, that the node was heard. That saves the loop a wake-up
  // and its after-batch work per heartbeat: with 100,000 tasks in the state,
  // 1,000 agents' heartbeats cost the leader 0.13 cores this way, 0.18
  // through the loop.
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = Admit(*ctx, req->node_id(), *req, "a heartbeat", r);
    if (!m) return r;
    if (AnswerFromCache(m, *req, reply)) {
      r->Finish(grpc::Status::OK);
      return r;
    }
    bool posted = m->Post([this, m, r, req, reply] {
      if (!m->is_leader()) return r->Finish(NotLeader(*m));
      auto out = m->dispatcher().Heartbeat(m->store().state(), *req, Manager::NowNs());
      if (!out.ok()) return r->Finish(Grpc(out.error()));
      *reply = std::move(out).value();
      Remember(m, *req, *reply);
      r->Finish(grpc::Status::OK);
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

  grpc::ServerUnaryReactor* Assignments(grpc::CallbackServerContext* ctx,
                                        const v1::AssignmentsRequest* req,
                                        v1::AssignmentsReply* reply) override {
    auto* r = ctx->DefaultReactor();
    Manager* m = Admit(*ctx, req->node_id(), *req, "a status report", r);
    if (!m) return r;
    // A long poll: parked until something changes, so it holds a stream slot
    // until it is answered.
    auto slot = d_->OpenStream(transport::PeerOf(*ctx), "dispatcher long polls");
    if (!slot.ok()) {
      r->Finish(Grpc(slot.error()));
      return r;
    }
    auto held = std::make_shared<StreamLimiter::Slot>(std::move(slot).value());
    bool posted = m->Post([m, r, req, reply, held] {
      if (!m->is_leader()) return r->Finish(NotLeader(*m));
      m->dispatcher().Assignments(m->store().state(), *req, Manager::NowNs(),
                                  [r, reply, held](Status s, v1::AssignmentsReply out) {
                                    held->Release();
                                    if (s.ok()) *reply = std::move(out);
                                    r->Finish(Grpc(s));
                                  });
    });
    if (!posted) r->Finish(Grpc({Code::kUnavailable, "manager stopping"}));
    return r;
  }

 private:
  // The checks every dispatcher call passes first: the caller is that node,
  // this daemon is a manager, the request is not oversized. Finishes `r`
  // with the refusal and returns null when one fails.
  Manager* Admit(grpc::CallbackServerContext& ctx, const std::string& node_id,
                 const google::protobuf::Message& req, const char* what,
                 grpc::ServerUnaryReactor* r) {
    if (grpc::Status a = AuthorizeNode(transport::PeerOf(ctx), node_id); !a.ok()) {
      r->Finish(a);
      return nullptr;
    }
    Manager* m = d_->manager();
    if (!m) {
      r->Finish(NotManager());
      return nullptr;
    }
    if (Status s = CheckMessageSize(req, kMaxDispatcherRequestBytes, what); !s.ok()) {
      r->Finish(Grpc(s));
      return nullptr;
    }
    return m;
  }

  struct Cached {
    std::string session_id;
    v1::HeartbeatReply reply;
  };
  struct Heard {
    std::string node_id, session_id;
    int64_t at_ns;
  };

  static grpc::Status NotLeader(Manager& m) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "not the leader; leader at " + m.LeaderAddress());
  }

  // Loop thread, after the dispatcher answered `req`: keeps the reply for
  // the session's next heartbeats if they may be answered from it (the
  // session went on, the node is READY in the state: otherwise the dispatcher
  // has a change to make on the next one).
  void Remember(Manager* m, const v1::HeartbeatRequest& req, const v1::HeartbeatReply& reply) {
    const v1::Node* node = m->store().state().Get<v1::Node>(req.node_id());
    bool keep = reply.session_id() == req.session_id() && node != nullptr &&
                node->status().state() == v1::NodeStatus::STATE_READY;
    // Read on the loop, where it moves: the reply is of this epoch.
    uint64_t epoch = d_->heartbeat_epoch_.load(std::memory_order_acquire);
    std::lock_guard<std::mutex> lock(mu_);
    if (!keep) {
      // A new session replaced the one cached: calls still naming the old
      // one must reach the dispatcher (and learn the new one).
      cache_.erase(req.node_id());
      return;
    }
    if (epoch != cache_epoch_) {
      cache_.clear();  // every entry is stale; removed nodes' go too
      cache_epoch_ = epoch;
    }
    cache_[req.node_id()] = Cached{reply.session_id(), reply};
  }

  // gRPC thread: true when `req` was answered into `reply` from the cache;
  // then the node's liveness is queued for the loop.
  bool AnswerFromCache(Manager* m, const v1::HeartbeatRequest& req, v1::HeartbeatReply* reply) {
    if (req.updates_size() > 0 || req.has_description() || req.session_id().empty()) return false;
    uint64_t epoch = d_->heartbeat_epoch_.load(std::memory_order_acquire);
    auto now = std::chrono::steady_clock::now();
    bool post = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (epoch != cache_epoch_) return false;
      auto it = cache_.find(req.node_id());
      if (it == cache_.end() || it->second.session_id != req.session_id()) return false;
      *reply = it->second.reply;
      heard_.push_back(Heard{req.node_id(), req.session_id(), Manager::NowNs()});
      // One loop task drains what arrives until it runs. Should it be lost
      // (a manager stopping drops its queue), the next one a second later
      // takes over.
      if (!drain_posted_ || now - drain_posted_at_ > std::chrono::seconds(1)) {
        drain_posted_ = true;
        drain_posted_at_ = now;
        post = true;
      }
    }
    if (post && !m->Post([this, m] { Drain(m); })) {
      std::lock_guard<std::mutex> lock(mu_);
      drain_posted_ = false;
    }
    return true;
  }

  // Loop thread: the dispatcher learns which nodes were heard, and when.
  void Drain(Manager* m) {
    std::vector<Heard> heard;
    {
      std::lock_guard<std::mutex> lock(mu_);
      heard.swap(heard_);
      drain_posted_ = false;
    }
    if (!m->is_leader()) return;
    for (const Heard& h : heard) m->dispatcher().Heard(h.node_id, h.session_id, h.at_ns);
  }

  Daemon::Impl* d_;
  std::mutex mu_;
  uint64_t cache_epoch_ = 0;
  std::unordered_map<std::string, Cached> cache_;  // node id ->
  std::vector<Heard> heard_;                       // not yet drained
  bool drain_posted_ = false;
  std::chrono::steady_clock::time_point drain_posted_at_;
};

}  // namespace

std::unique_ptr<v1::Dispatcher::CallbackService> MakeDispatcherService(Daemon::Impl* d) {
  return std::make_unique<DispatcherService>(d);
}

}  // namespace shoal::manager
