#pragma once

// The pure part of the docker executor: what a task's container is called,
// how it is labelled, and the body of POST /containers/create made from the
// task's ContainerSpec. No engine calls, so it is unit-tested without one.

#include <map>
#include <string>
#include <vector>

#include "shoal/common/status.h"
#include "shoal/v1/objects.pb.h"

namespace shoal::executor::docker {

inline constexpr const char* kLabelNode = "shoal.node.id";
inline constexpr const char* kLabelTask = "shoal.task.id";
inline constexpr const char* kLabelService = "shoal.service.id";
inline constexpr const char* kLabelServiceName = "shoal.service.name";
inline constexpr const char* kLabelStack = "shoal.stack";
inline constexpr const char* kLabelSlot = "shoal.task.slot";
inline constexpr const char* kLabelNetwork = "shoal.network";  // on networks the executor made

// A file (secret or config) bound read-only into the container.
struct FileBind {
  std::string host_path;
  std::string target;  // absolute, inside the container
};

// A network the container joins, by its engine name, with DNS aliases.
struct NetworkJoin {
  std::string name;
  std::vector<std::string> aliases;
  // The subnet the managers allocated (empty: the engine picks one).
  std::string subnet;
  // The engine's id of the network when known.
  std::string id;
  const std::string& Ref() const { return id.empty() ? name : id; }
};

// `<service>.<slot>.<task id>` (the node id for a global task, slot 0), with
// characters the engine refuses in names replaced by '_'.
std::string ContainerName(const v1::Task& task);

// The labels shoal puts on a task's container (the spec's own labels come
// first and cannot override these).
std::map<std::string, std::string> TaskLabels(const v1::Task& task, const std::string& node_id);

// Checks what the engine would only refuse later or never: image present in
// the spec, stop_signal, healthcheck kind, mount types and sources, port
// protocols. InvalidArgument (the task is REJECTED) with the reason.
Status ValidateSpec(const v1::Task& task);

// The JSON body of POST /containers/create for `task`: image, command,
// entrypoint, env, labels, user and groups, working dir, hostname, dns,
// extra hosts, caps, sysctls, ulimits, init, tty, stdin, read-only, stop
// signal and timeout, healthcheck, resources, mounts (volume, bind, tmpfs),
// the file binds, logging driver, host-mode published ports, and the first
// network in `networks` (the engine takes one at create; the others are
// connected before start). Call ValidateSpec first.
std::string CreateBody(const v1::Task& task, const std::string& node_id,
                       const std::vector<FileBind>& files,
                       const std::vector<NetworkJoin>& networks);

}  // namespace shoal::executor::docker
