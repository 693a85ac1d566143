#include "log.h"

#include <catch2/catch.hpp>

#include "progress.h"

namespace shoal::raft {
namespace {

Entry E(uint64_t index, uint64_t term, std::string data = "") {
  Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(std::move(data));
  return e;
}

RaftLog MakeLog(std::vector<Entry> entries, uint64_t commit = 0) {
  return RaftLog(std::make_shared<Snapshot>(), std::move(entries), commit, 0);
}

TEST_CASE("RaftLog appends, truncates an uncommitted suffix and tracks stability") {
  RaftLog log = MakeLog({E(1, 1), E(2, 1), E(3, 2)});
  CHECK(log.LastIndex() == 3);
  CHECK(log.stable() == 3);
  CHECK(log.Term(0) == 0u);
  CHECK(log.Term(3) == 2u);
  CHECK_FALSE(log.Term(4).has_value());

  log.Append({E(3, 3), E(4, 3)});
  CHECK(log.LastIndex() == 4);
  CHECK(log.Term(3) == 3u);
  CHECK(log.stable() == 2);  // index 3 was rewritten and must be persisted again
  CHECK(log.UnstableEntries().size() == 2);
  log.StableTo(4, 2);  // a stale promise (wrong term) is ignored
  CHECK(log.stable() == 2);
  log.StableTo(4, 3);
  CHECK(log.stable() == 4);
}

TEST_CASE("RaftLog MaybeAppend matches, finds conflicts and bounds the commit") {
  RaftLog log = MakeLog({E(1, 1), E(2, 1), E(3, 1)}, 1);
  CHECK_FALSE(log.MaybeAppend(3, 2, 3, {}).has_value());  // term mismatch at 3
  CHECK_FALSE(log.MaybeAppend(5, 1, 3, {}).has_value());  // beyond our log
  auto last = log.MaybeAppend(2, 1, 10, {E(3, 2), E(4, 2)});
  REQUIRE(last.has_value());
  CHECK(*last == 4);
  CHECK(log.Term(3) == 2u);
  CHECK(log.committed() == 4);  // min(leader commit, last new entry)
  // A duplicate of what we hold changes nothing.
  CHECK(log.MaybeAppend(1, 1, 4, {E(2, 1)}) == 2u);
  CHECK(log.LastIndex() == 4);
}

TEST_CASE("RaftLog FindConflictByTerm skips whole terms") {
  RaftLog log = MakeLog({E(1, 1), E(2, 1), E(3, 3), E(4, 3), E(5, 5)});
  CHECK(log.FindConflictByTerm(5, 4) == 4);
  CHECK(log.FindConflictByTerm(5, 2) == 2);
  CHECK(log.FindConflictByTerm(5, 0) == 0);
  CHECK(log.FindConflictByTerm(9, 5) == 5);
}

TEST_CASE("RaftLog commits only entries of the given term by counting") {
  RaftLog log = MakeLog({E(1, 1), E(2, 2)});
  CHECK_FALSE(log.MaybeCommit(1, 2));  // an old-term entry is not committed by count
  CHECK(log.MaybeCommit(2, 2));
  CHECK(log.committed() == 2);
}

TEST_CASE("RaftLog Slice honours the size limit but returns at least one entry") {
  RaftLog log = MakeLog({E(1, 1, std::string(100, 'a')), E(2, 1, std::string(100, 'b')),
                         E(3, 1, std::string(100, 'c'))});
  CHECK(log.Slice(1, 4, 1).size() == 1);
  CHECK(log.Slice(1, 4, 250).size() == 2);
  CHECK(log.Slice(1, 4, UINT64_MAX).size() == 3);
}

TEST_CASE("RaftLog compaction keeps the boundary term and restore replaces everything") {
  RaftLog log = MakeLog({E(1, 1), E(2, 1), E(3, 2), E(4, 2)}, 4);
  log.AppliedTo(4);
  auto snap = std::make_shared<Snapshot>();
  snap->mutable_metadata()->set_index(4);
  snap->mutable_metadata()->set_term(2);
  log.Compact(snap, 3);
  CHECK(log.FirstIndex() == 4);
  CHECK(log.Term(3) == 2u);
  CHECK_FALSE(log.Term(2).has_value());

  auto newer = std::make_shared<Snapshot>();
  newer->mutable_metadata()->set_index(10);
  newer->mutable_metadata()->set_term(5);
  log.Restore(newer);
  CHECK(log.LastIndex() == 10);
  CHECK(log.committed() == 10);
  CHECK(log.snapshot_pending());
  CHECK_FALSE(log.HasNextCommitted());  // nothing to apply until the snapshot is
}

TEST_CASE("Progress flow control: probe, replicate, inflight window") {
  Progress pr(2);
  pr.next = 5;
  CHECK_FALSE(pr.IsPaused());
  pr.probe_sent = true;
  CHECK(pr.IsPaused());
  CHECK(pr.MaybeDecrTo(4, 2));  // rejection of our probe at 4, follower has up to 2
  CHECK(pr.next == 3);
  CHECK_FALSE(pr.MaybeDecrTo(9, 1));  // stale rejection
  CHECK(pr.MaybeUpdate(3));
  pr.BecomeReplicate();
  CHECK(pr.next == 4);
  pr.OptimisticUpdate(5);
  pr.inflights.Add(5);
  pr.OptimisticUpdate(7);
  pr.inflights.Add(7);
  CHECK(pr.IsPaused());
  pr.inflights.FreeLE(5);
  CHECK_FALSE(pr.IsPaused());
  CHECK(pr.next == 8);
}

TEST_CASE("ReadOnly releases requests in order once acknowledged") {
  ReadOnly ro;
  ro.Add({5, 1, "a"}, 1);
  ro.Add({6, 2, "b"}, 1);
  CHECK(ro.Ack(2, "b") == 2);
  auto done = ro.Advance("b");
  REQUIRE(done.size() == 2);
  CHECK(done[0].context == "a");
  CHECK(done[1].index == 6);
  CHECK(ro.LastContext() == nullptr);
}

}  // namespace
}  // namespace shoal::raft
