#include "ingress.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdio>
#include <set>
#include <vector>

namespace shoal::executor::docker {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// One forwarded connection: bytes both ways; an end of stream one way is
// passed on as a shutdown of the other side's sending half.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(tcp::socket client, asio::io_context& io) : client_(std::move(client)), backend_(io) {}

  // Connects to the first backend of `to` that accepts: a task that just
  // died may still be listed (the table lags behind the engine by a beat).
  void Start(std::vector<tcp::endpoint> to) {
    to_ = std::move(to);
    Connect(0);
  }

 private:
  using Buffer = std::array<char, 16384>;

  void Connect(size_t i) {
    if (i >= to_.size()) return;  // none: the client's socket closes with us
    auto self = shared_from_this();
    backend_.async_connect(to_[i], [self, i](error_code ec) {
      if (ec) {
        error_code ignored;
        self->backend_.close(ignored);
        self->Connect(i + 1);
        return;
      }
      self->Pump(self->client_, self->backend_, self->up_);
      self->Pump(self->backend_, self->client_, self->down_);
    });
  }

  void Pump(tcp::socket& from, tcp::socket& to, Buffer& buf) {
    auto self = shared_from_this();
    from.async_read_some(asio::buffer(buf), [self, &from, &to, &buf](error_code ec, size_t n) {
      if (ec) {
        error_code ignored;
        if (ec == asio::error::eof) {
          to.shutdown(tcp::socket::shutdown_send, ignored);
        } else {
          from.close(ignored);
          to.close(ignored);
        }
        return;
      }
      asio::async_write(to, asio::buffer(buf, n), [self, &from, &to, &buf](error_code ec, size_t) {
        if (ec) {
          error_code ignored;
          from.close(ignored);
          to.close(ignored);
          return;
        }
        self->Pump(from, to, buf);
      });
    });
  }

  tcp::socket client_;
  tcp::socket backend_;
  std::vector<tcp::endpoint> to_;
  Buffer up_{}, down_{};
};

// Another node's task (or one of this node's that no Claim covers), as the
// table lists it.
struct Remote {
  std::string task_id;
  tcp::endpoint at;
};

}  // namespace

struct IngressProxy::Impl {
  struct Listener {
    std::string service_id;
    uint16_t target = 0;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::set<std::string> claims;                 // this node's task ids
    std::map<std::string, std::string> backends;  // this node's: task id -> address
    bool listed = false;                          // in the latest table
    std::vector<Remote> remote;                   // from the table
    size_t next = 0;                              // round robin
  };

  std::string listen_addr;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  mutable std::mutex mu;
  std::map<uint16_t, std::shared_ptr<Listener>> listeners;
  std::map<uint16_t, std::string> reported;  // bind errors already on stderr

  // Where the next connection of `l` goes first, then the others in turn
  // (mu held): this node's tasks and the table's, round robin over both.
  std::vector<tcp::endpoint> Pick(Listener& l) {
    std::vector<tcp::endpoint> all;
    for (const auto& [task, ip] : l.backends) {
      error_code bad;
      auto addr = asio::ip::make_address(ip, bad);
      if (!bad) all.emplace_back(addr, l.target);
    }
    for (const Remote& r : l.remote) {
      if (!l.backends.count(r.task_id)) all.push_back(r.at);
    }
    if (all.empty()) return all;
    std::rotate(all.begin(), all.begin() + static_cast<long>(l.next++ % all.size()), all.end());
    return all;
  }

  void Accept(const std::shared_ptr<Listener>& l) {
    l->acceptor->async_accept([this, l](error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !l->acceptor->is_open()) return;
      if (!ec) {
        std::vector<tcp::endpoint> to;
        {
          std::lock_guard<std::mutex> lock(mu);
          to = Pick(*l);
        }
        // No running task anywhere: the connection is closed at once.
        if (!to.empty()) std::make_shared<Conn>(std::move(s), io)->Start(std::move(to));
      }
      Accept(l);
    });
  }

  // A new listener on `port` (mu held); kUnavailable when it cannot bind.
  Result<std::shared_ptr<Listener>> Listen(uint16_t port) {
    auto l = std::make_shared<Listener>();
    l->acceptor = std::make_unique<tcp::acceptor>(io);
    error_code ec;
    const auto addr = asio::ip::make_address(listen_addr, ec);
    if (ec) {
      return Status(Code::kInvalidArgument, "ingress address \"" + listen_addr +
                                                "\" is not an IP address: " + ec.message());
    }
    const tcp::endpoint ep(addr, port);
    l->acceptor->open(ep.protocol(), ec);
    if (!ec) l->acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (setsockopt(l->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
          0) {
        ec = error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) l->acceptor->bind(ep, ec);
    if (!ec) l->acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(Code::kUnavailable, "ingress port " + std::to_string(port) +
                                            ": cannot listen on " + listen_addr + ": " +
                                            ec.message());
    }
    listeners[port] = l;
    asio::post(io, [this, l] { Accept(l); });
    return l;
  }

  // Closes listeners nothing claims or lists any more (mu held).
  void Prune() {
    for (auto it = listeners.begin(); it != listeners.end();) {
      std::shared_ptr<Listener> l = it->second;
      if (!l->claims.empty() || l->listed) {
        ++it;
        continue;
      }
      // Closed on the io thread, where its accept is pending.
      asio::post(io, [l] {
        error_code ignored;
        l->acceptor->close(ignored);
      });
      it = listeners.erase(it);
    }
  }
};

IngressProxy::IngressProxy(std::string listen_addr) : impl_(std::make_unique<Impl>()) {
  impl_->listen_addr = listen_addr.empty() ? "0.0.0.0" : std::move(listen_addr);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

IngressProxy::~IngressProxy() {
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
}

Status IngressProxy::Claim(uint16_t port, uint16_t target, const std::string& service_id,
                           const std::string& task_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->listeners.find(port);
  if (it != impl_->listeners.end()) {
    Impl::Listener& l = *it->second;
    if (l.service_id != service_id) {
      if (!l.claims.empty()) {
        return Status(Code::kFailedPrecondition,
                      "ingress port " + std::to_string(port) +
                          " is already published by another service on this node");
      }
      // Only an older table named another service: this node's task wins.
      l.service_id = service_id;
      l.remote.clear();
    }
    l.target = target;
    l.claims.insert(task_id);
    return Status::Ok();
  }
  auto l = impl_->Listen(port);
  if (!l.ok()) return l.error();
  (*l)->service_id = service_id;
  (*l)->target = target;
  (*l)->claims.insert(task_id);
  return Status::Ok();
}

void IngressProxy::SetBackend(const std::string& task_id, const std::string& ip) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [port, l] : impl_->listeners) {
    if (l->claims.count(task_id)) l->backends[task_id] = ip;
  }
}

void IngressProxy::DropBackend(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [port, l] : impl_->listeners) l->backends.erase(task_id);
}

void IngressProxy::Release(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [port, l] : impl_->listeners) {
    l->backends.erase(task_id);
    l->claims.erase(task_id);
  }
  impl_->Prune();
}

void IngressProxy::SetTable(const v1::IngressTable& table, const std::string& node_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [port, l] : impl_->listeners) l->listed = false;
  for (const v1::IngressService& svc : table.services()) {
    for (const v1::PortConfig& p : svc.ports()) {
      const auto port = static_cast<uint16_t>(p.published());
      const auto target = static_cast<uint16_t>(p.target());
      std::shared_ptr<Impl::Listener> l;
      if (auto it = impl_->listeners.find(port); it != impl_->listeners.end()) {
        l = it->second;
        // This node's tasks of another service keep the port until they go.
        if (l->service_id != svc.service_id() && !l->claims.empty()) continue;
      } else {
        auto made = impl_->Listen(port);
        if (!made.ok()) {
          std::string& said = impl_->reported[port];
          if (said != made.error().message()) {
            said = made.error().message();
            std::fprintf(stderr, "shoal: ingress for %s: %s\n", svc.service_name().c_str(),
                         said.c_str());
          }
          continue;
        }
        impl_->reported.erase(port);
        l = *made;
      }
      l->service_id = svc.service_id();
      l->target = target;
      l->listed = true;
      l->remote.clear();
      for (const v1::IngressBackend& b : svc.backends()) {
        if (b.node_id() == node_id && l->claims.count(b.task_id())) continue;  // local path
        for (const v1::PortConfig& hp : b.ports()) {
          if (hp.target() != p.target() || hp.published() == 0) continue;
          if (!hp.protocol().empty() && hp.protocol() != "tcp") continue;
          error_code bad;
          auto addr = asio::ip::make_address(b.node_addr(), bad);
          if (bad) break;
          l->remote.push_back(
              {b.task_id(), tcp::endpoint(addr, static_cast<uint16_t>(hp.published()))});
          break;
        }
      }
    }
  }
  impl_->Prune();
}

std::map<uint16_t, std::string> IngressProxy::Listening() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::map<uint16_t, std::string> out;
  for (const auto& [port, l] : impl_->listeners) out[port] = l->service_id;
  return out;
}

}  // namespace shoal::executor::docker
