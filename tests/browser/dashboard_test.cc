// The scheduler's dashboard in a real browser (headless Chromium through
// chromedriver): it lists every worker, its finished count rises while a
// job runs, and a screenshot of it is saved as a test artifact
// (test-artifacts/dashboard.png in the build directory).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/browser/webdriver.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

using fleet::test::WebDriver;

// How long the page may take to show a state the cluster is in (it polls
// /status once a second).
constexpr std::chrono::seconds kPageTimeout(20);
// The job: enough short tasks to keep the four slots busy for several
// seconds (about ten), so the page shows it running and its chart some history.
constexpr int kTasks = 800;
constexpr int kTaskMs = 50;

// The number in the page's `#finished` card, or -1 before its first refresh.
long FinishedOnPage(WebDriver& page) {
  std::string error;
  std::optional<std::string> text = page.TextOf("#finished", &error);
  if (!text) return -1;
  try {
    return std::stol(*text);
  } catch (const std::exception&) {
    return -1;  // "–" until the first /status arrives
  }
}

TEST_F(ClusterTest, DashboardListsEveryWorkerAndCountsAJobInABrowser) {
  std::string error;
  std::unique_ptr<WebDriver> page = WebDriver::Start(1280, 800, &error);
  ASSERT_NE(page, nullptr) << "cannot drive Chromium: " << error;
  const std::string url = "http://127.0.0.1:" + std::to_string(cluster().http_port()) + "/";
  ASSERT_TRUE(page->Navigate(url, &error)) << error;

  // Every worker of /status, by address, in the table.
  std::set<std::string> expected;
  const nlohmann::json status = cluster().Status();
  for (const nlohmann::json& w : status["workers"])
    expected.insert(w["address"].get<std::string>());
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(kWorkers));
  std::set<std::string> shown;
  const bool listed = fleet::test::PollUntil(
      [&] {
        std::optional<nlohmann::json> rows = page->Execute(
            "return [...document.querySelectorAll('#worker-table tbody tr')]"
            ".map(r => [r.dataset.address, r.cells[0].textContent]);",
            &error);
        shown.clear();
        if (!rows) return false;
        for (const nlohmann::json& row : *rows) {
          // The row's first cell shows the address its data attribute names.
          if (row[0] == row[1]) shown.insert(row[0].get<std::string>());
        }
        return shown == expected;
      },
      kPageTimeout, std::chrono::milliseconds(200));
  EXPECT_TRUE(listed) << "the page's worker table shows " << nlohmann::json(shown).dump()
                      << ", /status has " << nlohmann::json(expected).dump() << " " << error;

  long before = -1;
  ASSERT_TRUE(fleet::test::PollUntil([&] { return (before = FinishedOnPage(*page)) >= 0; },
                                     kPageTimeout, std::chrono::milliseconds(200)));

  // While the job runs, the finished count on the page rises (and the
  // screenshot shows it under way).
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(fleet::Task(SleepThenSquare).Remote(i, kTaskMs));
  long during = before;
  const bool rose = fleet::test::PollUntil(
      [&] {
        during = FinishedOnPage(*page);
        return during > before + kTasks * 3 / 4;
      },
      kPageTimeout * 2, std::chrono::milliseconds(200));
  EXPECT_TRUE(rose) << "finished stayed at " << during << " (from " << before << ")";

  std::optional<std::string> png = page->ScreenshotPng(&error);
  ASSERT_TRUE(png.has_value()) << error;
  EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::filesystem::create_directories(FLEET_TEST_ARTIFACTS_DIR);
  const std::string path = std::string(FLEET_TEST_ARTIFACTS_DIR) + "/dashboard.png";
  std::ofstream(path, std::ios::binary) << *png;
  std::cout << "dashboard screenshot: " << path << "\n";
  RecordProperty("dashboard_screenshot", path);

  for (int i = 0; i < kTasks; ++i) ASSERT_EQ(refs[i].Get(kResultTimeout), i * i);
  // Once the job is done, the page counts every task.
  long after = -1;
  EXPECT_TRUE(
      fleet::test::PollUntil([&] { return (after = FinishedOnPage(*page)) >= before + kTasks; },
                             kPageTimeout, std::chrono::milliseconds(200)))
      << "the page shows " << after << " finished, expected at least " << before + kTasks;
}

}  // namespace
}  // namespace fleet_it
