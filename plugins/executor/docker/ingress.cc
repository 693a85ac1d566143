#include "ingress.h"

#include <sys/socket.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
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

  void Start(const tcp::endpoint& to) {
    auto self = shared_from_this();
    backend_.async_connect(to, [self](error_code ec) {
      if (ec) return;  // the client's socket closes with the last reference
      self->Pump(self->client_, self->backend_, self->up_);
      self->Pump(self->backend_, self->client_, self->down_);
    });
  }

 private:
  using Buffer = std::array<char, 16384>;

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
  Buffer up_{}, down_{};
};

}  // namespace

struct IngressProxy::Impl {
  struct Listener {
    std::string service_id;
    uint16_t target = 0;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::set<std::string> claims;                 // task ids
    std::map<std::string, std::string> backends;  // task id -> address
    size_t next = 0;                              // round robin
  };

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  std::mutex mu;
  std::map<uint16_t, std::shared_ptr<Listener>> listeners;

  void Accept(const std::shared_ptr<Listener>& l) {
    l->acceptor->async_accept([this, l](error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !l->acceptor->is_open()) return;
      if (!ec) {
        std::string ip;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!l->backends.empty()) {
            auto it = l->backends.begin();
            std::advance(it, static_cast<long>(l->next++ % l->backends.size()));
            ip = it->second;
          }
        }
        error_code bad;
        auto addr = asio::ip::make_address(ip, bad);
        // No running task: the connection is closed at once.
        if (!ip.empty() && !bad) {
          std::make_shared<Conn>(std::move(s), io)->Start(tcp::endpoint(addr, l->target));
        }
      }
      Accept(l);
    });
  }
};

IngressProxy::IngressProxy() : impl_(std::make_unique<Impl>()) {
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
    if (it->second->service_id != service_id) {
      return Status(Code::kFailedPrecondition,
                    "ingress port " + std::to_string(port) +
                        " is already published by another service on this node");
    }
    it->second->claims.insert(task_id);
    return Status::Ok();
  }
  auto l = std::make_shared<Impl::Listener>();
  l->service_id = service_id;
  l->target = target;
  l->acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  error_code ec;
  const tcp::endpoint ep(tcp::v4(), port);
  l->acceptor->open(ep.protocol(), ec);
  if (!ec) l->acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (setsockopt(l->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) l->acceptor->bind(ep, ec);
  if (!ec) l->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(Code::kUnavailable,
                  "ingress port " + std::to_string(port) + ": cannot listen: " + ec.message());
  }
  l->claims.insert(task_id);
  impl_->listeners[port] = l;
  asio::post(impl_->io, [this, l] { impl_->Accept(l); });
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
  for (auto it = impl_->listeners.begin(); it != impl_->listeners.end();) {
    std::shared_ptr<Impl::Listener> l = it->second;
    l->backends.erase(task_id);
    l->claims.erase(task_id);
    if (!l->claims.empty()) {
      ++it;
      continue;
    }
    // Closed on the io thread, where its accept is pending.
    asio::post(impl_->io, [l] {
      error_code ignored;
      l->acceptor->close(ignored);
    });
    it = impl_->listeners.erase(it);
  }
}

}  // namespace shoal::executor::docker
