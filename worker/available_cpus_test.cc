#include "worker/available_cpus.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace fleet::worker {
namespace {

class AvailableCpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/fleet-cgroup.XXXXXX";
    ASSERT_NE(mkdtemp(path), nullptr);
    root_ = path;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Write(const std::string& relative, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(root_ + relative).parent_path());
    std::ofstream(root_ + relative) << content;
  }

  std::string root_;
};

TEST_F(AvailableCpusTest, WithoutAQuotaItIsTheAffinityMask) {
  const int unlimited = AvailableCpus(root_);
  EXPECT_GE(unlimited, 1);
  Write("/cpu.max", "max 100000\n");
  EXPECT_EQ(AvailableCpus(root_), unlimited);
}

TEST_F(AvailableCpusTest, CgroupV2QuotaCapsItRoundedUp) {
  Write("/cpu.max", "50000 100000\n");  // half a CPU
  EXPECT_EQ(AvailableCpus(root_), 1);
  if (AvailableCpus("/nonexistent") >= 2) {
    Write("/cpu.max", "150000 100000\n");  // 1.5 CPUs
    EXPECT_EQ(AvailableCpus(root_), 2);
  }
}

TEST_F(AvailableCpusTest, CgroupV1QuotaCapsIt) {
  Write("/cpu,cpuacct/cpu.cfs_quota_us", "100000\n");
  Write("/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(AvailableCpus(root_), 1);
  Write("/cpu/cpu.cfs_quota_us", "-1\n");  // no limit, found first
  Write("/cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(AvailableCpus(root_), AvailableCpus("/nonexistent"));
}

}  // namespace
}  // namespace fleet::worker
