// net/stdio_relay.h: which shard a stdio session id names. Anything else names none (and is
// then looked up, and refused, where it arrived).

#include "net/stdio_relay.h"

#include <gtest/gtest.h>

namespace sluice::net {
namespace {

TEST(stdio_relay, SessionOwnerIsTheDecimalAfterTheLastDash) {
  EXPECT_EQ(session_owner("0ab82549d75fac6267be2977108d25bb-0", 2), 0);
  EXPECT_EQ(session_owner("0ab82549d75fac6267be2977108d25bb-1", 2), 1);
  EXPECT_EQ(session_owner("a-b-17", 64), 17);
}

TEST(stdio_relay, IdsNamingNoShardAreNobodys) {
  for (std::string_view id : {"", "-", "abc", "abc-", "abc-2", "abc-99999999999999999999", "abc-+1",
                              "abc-1x", "abc-0x1", "abc- 1", "fixture-session-123"})
    EXPECT_EQ(session_owner(id, 2), -1) << id;
}

TEST(stdio_relay, PostsToAShardThatIsNotAttachedAreDropped) {
  stdio_relay_hub hub(2);
  relay_message m;
  m.body = "x";
  EXPECT_FALSE(hub.post(1, m));
  EXPECT_FALSE(hub.post(7, m));  // no such shard
  std::vector<relay_message> got;
  hub.take(1, got);
  EXPECT_TRUE(got.empty());
}

}  // namespace
}  // namespace sluice::net
