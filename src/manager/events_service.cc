// The Events service: `shoal events` and `shoal service logs`. Synchronous
// gRPC (a thread per stream): each stream polls the manager's loop, which
// keeps the loop free of per-stream state.

#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "daemon_internal.h"
#include "shoal/manager/deploy.h"

namespace shoal::manager {
namespace {

using std::chrono::milliseconds;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One line describing a change, for `shoal events`.
v1::WatchEvent Describe(const store::Event& e) {
  v1::WatchEvent out;
  out.set_version(e.version);
  auto kind = store::KindOf(e.mutation);
  out.set_kind(kind.ok() ? store::KindName(*kind) : "?");
  out.set_action(e.mutation.op() == v1::Mutation::OP_DELETE ? "remove" : "update");
  if (const v1::Meta* meta = store::MetaOf(e.mutation)) {
    out.set_id(meta->id());
    if (meta->created_at_ns() == meta->updated_at_ns() &&
        e.mutation.op() != v1::Mutation::OP_DELETE) {
      out.set_action("create");
    }
  }
  const v1::Mutation& m = e.mutation;
  switch (m.object_case()) {
    case v1::Mutation::kTask: {
      const v1::Task& t = m.task();
      out.set_name(t.service_name() + (t.slot() ? "." + std::to_string(t.slot()) : ""));
      out.set_stack(t.stack());
      std::string state = v1::TaskState_Name(t.status().state()).substr(5);
      std::string desired = v1::TaskState_Name(t.desired_state()).substr(5);
      out.set_summary("task " + out.name() + " " + Lower(state) + " (desired " + Lower(desired) +
                      ")" + (t.node_id().empty() ? "" : " on " + t.node_id()) +
                      (t.status().error().empty() ? "" : ": " + t.status().error()));
      *out.mutable_task() = t;
      break;
    }
    case v1::Mutation::kService:
      out.set_name(m.service().spec().name());
      out.set_stack(m.service().spec().stack());
      out.set_summary("service " + out.name() + " " + out.action());
      break;
    case v1::Mutation::kNode: {
      out.set_name(m.node().description().hostname());
      std::string st = v1::NodeStatus::State_Name(m.node().status().state()).substr(6);
      out.set_summary("node " + out.name() + " " + Lower(st));
      break;
    }
    case v1::Mutation::kStack:
      out.set_name(m.stack().name());
      out.set_stack(m.stack().name());
      out.set_summary("stack " + out.name() + " at revision " +
                      std::to_string(m.stack().current_revision()));
      break;
    default:
      out.set_summary(out.kind() + " " + out.id() + " " + out.action());
  }
  return out;
}

class EventsService final : public v1::Events::Service {
 public:
  explicit EventsService(Daemon::Impl* d) : d_(d) {}

  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override {
    Manager* m = d_->manager();
    if (!m) return NotManager();
    if (grpc::Status a = Authorize(*ctx, m); !a.ok()) return a;
    // Each stream holds one of gRPC's threads while it lasts.
    auto slot = d_->OpenStream(transport::PeerOf(*ctx), "event streams");
    if (!slot.ok()) return Grpc(slot.error());
    uint64_t from = req->from_version();
    // A reader of the watch log, so that it keeps what this stream has not
    // sent yet (up to its capacity).
    uint64_t reader = 0;
    m->RunSync([&] {
      if (from == 0) from = m->store().state().applied_index();
      reader = m->store().watch().AddReader(from);
    });
    struct Unregister {
      Manager* m;
      uint64_t reader;
      ~Unregister() {
        m->RunSync([this] { m->store().watch().RemoveReader(reader); });
      }
    } unregister{m, reader};
    std::set<std::string> kinds(req->kinds().begin(), req->kinds().end());
    while (!ctx->IsCancelled()) {
      std::vector<store::Event> events;
      bool reset = false;
      bool alive = m->RunSync([&] {
        m->store().watch().SetRead(reader, from);
        auto got = m->store().watch().Since(from, 1000);
        if (got.ok()) {
          events = std::move(got).value();
        } else {
          reset = true;
          from = m->store().state().applied_index();
        }
      });
      if (!alive) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "manager stopping");
      if (reset) {
        v1::WatchEvent e;
        e.set_reset(true);
        e.set_version(from);
        e.set_summary("fell behind the kept events: reload and watch from here");
        if (!writer->Write(e)) return grpc::Status::OK;
        continue;
      }
      for (const auto& ev : events) {
        from = ev.version;
        v1::WatchEvent out = Describe(ev);
        if (!kinds.empty() && !kinds.count(out.kind())) continue;
        if (!req->stack().empty() && out.stack() != req->stack()) continue;
        if (!writer->Write(out)) return grpc::Status::OK;
      }
      if (events.empty()) std::this_thread::sleep_for(milliseconds(100));
    }
    return grpc::Status::OK;
  }

  grpc::Status TaskLogs(grpc::ServerContext* ctx, const v1::TaskLogsRequest* req,
                        v1::LogChunk* reply) override {
    // Managers fetch a task's output from the node that runs it.
    transport::Peer peer = transport::PeerOf(*ctx);
    if (!peer.local && (!peer.has_cert || peer.cert.role != ca::Role::kManager)) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "only managers may read a node's task output");
    }
    return LocalLogs(req, reply);
  }

  grpc::Status LocalLogs(const v1::TaskLogsRequest* req, v1::LogChunk* reply) {
    if (!d_->agent_) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this node runs no tasks");
    }
    size_t max = req->max_bytes() ? req->max_bytes() : 1 << 20;
    auto data = d_->agent_->Logs(req->task_id(), req->offset(), max);
    if (!data.ok()) return Grpc(data.error());
    reply->set_task_id(req->task_id());
    reply->set_offset(req->offset());
    reply->set_data(std::move(data).value());
    return grpc::Status::OK;
  }

  grpc::Status ServiceLogs(grpc::ServerContext* ctx, const v1::ServiceLogsRequest* req,
                           grpc::ServerWriter<v1::LogChunk>* writer) override {
    Manager* m = d_->manager();
    if (!m) return NotManager();
    if (grpc::Status a = Authorize(*ctx, m); !a.ok()) return a;
    auto slot = d_->OpenStream(transport::PeerOf(*ctx), "log streams");
    if (!slot.ok()) return Grpc(slot.error());
    std::map<std::string, uint64_t> offsets;  // task id -> bytes sent
    while (!ctx->IsCancelled()) {
      std::vector<v1::Task> tasks;
      std::map<std::string, std::string> addrs;
      bool found = false;
      m->RunSync([&] {
        const store::State& state = m->store().state();
        const v1::Service* s = FindService(state, req->service());
        if (!s) return;
        found = true;
        for (const v1::Mutation* t : state.Find(store::Kind::kTask, "service", s->meta().id())) {
          if (t->task().node_id().empty()) continue;
          tasks.push_back(t->task());
          if (const v1::Node* n = state.Get<v1::Node>(t->task().node_id())) {
            addrs[t->task().node_id()] = n->status().addr();
          }
        }
      });
      if (!found) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            "service " + req->service() + " not found");
      }
      bool any = false;
      for (const v1::Task& t : tasks) {
        uint64_t& off = offsets[t.meta().id()];
        while (true) {
          auto chunk = Fetch(t, addrs[t.node_id()], off);
          if (!chunk || chunk->data().empty()) break;
          off += chunk->data().size();
          any = true;
          chunk->set_slot(t.slot());
          chunk->set_node_id(t.node_id());
          chunk->set_service(t.service_name());
          if (!writer->Write(*chunk)) return grpc::Status::OK;
        }
      }
      if (!req->follow()) return grpc::Status::OK;
      if (!any) std::this_thread::sleep_for(milliseconds(300));
    }
    return grpc::Status::OK;
  }

 private:
  // A chunk of a task's output from the node that runs it (this one
  // directly; another through its daemon's TaskLogs).
  std::optional<v1::LogChunk> Fetch(const v1::Task& t, const std::string& addr, uint64_t off) {
    if (t.node_id() == d_->identity_.node_id()) {
      v1::TaskLogsRequest req;
      req.set_task_id(t.meta().id());
      req.set_offset(off);
      v1::LogChunk out;
      if (!LocalLogs(&req, &out).ok()) return std::nullopt;
      return out;
    }
    if (addr.empty()) return std::nullopt;
    std::shared_ptr<v1::Events::Stub> stub;
    {
      // Log streams run on several gRPC threads at once.
      std::lock_guard lock(stubs_mu_);
      auto& cached = stubs_[addr];
      if (!cached) {
        // Any node runs tasks: its certificate names its node id.
        transport::ClientTls tls = d_->tls();
        tls.server_name = t.node_id();
        cached = v1::Events::NewStub(transport::Dial(addr, tls));
      }
      stub = cached;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::TaskLogsRequest req;
    req.set_task_id(t.meta().id());
    req.set_offset(off);
    v1::LogChunk out;
    if (!stub->TaskLogs(&ctx, req, &out).ok()) return std::nullopt;
    return out;
  }

  // The Control rules (AuthorizeControl) against this manager's state.
  static grpc::Status Authorize(const grpc::ServerContext& ctx, Manager* m) {
    transport::Peer peer = transport::PeerOf(ctx);
    if (peer.local) return grpc::Status::OK;
    grpc::Status out(grpc::StatusCode::UNAVAILABLE, "manager stopping");
    m->RunSync([&] { out = AuthorizeControl(peer, m->store().state()); });
    return out;
  }

  Daemon::Impl* d_;
  std::mutex stubs_mu_;
  std::map<std::string, std::shared_ptr<v1::Events::Stub>> stubs_;
};

}  // namespace

std::unique_ptr<v1::Events::Service> MakeEventsService(Daemon::Impl* d) {
  return std::make_unique<EventsService>(d);
}

}  // namespace shoal::manager
