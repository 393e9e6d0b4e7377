#include "scheduler/metrics_text.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fleet::scheduler {
namespace {

using ::testing::HasSubstr;

ClusterSnapshot Sample() {
  ClusterSnapshot snapshot;
  snapshot.tasks_finished = 1234567;
  snapshot.tasks_ready = 3;
  WorkerSnapshot& w = snapshot.workers.emplace_back();
  w.id = "ab12";
  w.address = "10.0.0.1:7000";
  w.slots = 4;
  w.executor_restarts = 2;
  FunctionStats& stats = snapshot.functions["Square"];
  stats.run_time.Add(0.0002);   // second bucket
  stats.run_time.Add(0.003);    // fifth
  stats.run_time.Add(1000);     // above every bound
  snapshot.functions["odd\"name"].queue_wait.Add(0.01);
  return snapshot;
}

TEST(MetricsTextTest, CountersAreExactAndTyped) {
  const std::string text = PrometheusText(Sample());
  EXPECT_THAT(text, HasSubstr("# TYPE fleet_tasks_finished_total counter\n"
                              "fleet_tasks_finished_total 1234567\n"));
  EXPECT_THAT(text, HasSubstr("fleet_tasks{state=\"ready\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("fleet_worker_executor_restarts_total{worker=\"ab12\","
                              "address=\"10.0.0.1:7000\"} 2\n"));
}

TEST(MetricsTextTest, HistogramBucketsAreCumulativePerFunction) {
  const std::string text = PrometheusText(Sample());
  EXPECT_THAT(text, HasSubstr("fleet_task_run_seconds_bucket{function=\"Square\",le=\"0.0001\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("fleet_task_run_seconds_bucket{function=\"Square\",le=\"0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fleet_task_run_seconds_bucket{function=\"Square\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("fleet_task_run_seconds_bucket{function=\"Square\",le=\"300\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("fleet_task_run_seconds_bucket{function=\"Square\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("fleet_task_run_seconds_count{function=\"Square\"} 3\n"));
  // Label values are escaped.
  EXPECT_THAT(text, HasSubstr("fleet_task_queue_wait_seconds_count{function=\"odd\\\"name\"} 1\n"));
}

}  // namespace
}  // namespace fleet::scheduler
