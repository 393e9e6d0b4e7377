// geometry_driver: builds regular polygons and summarizes them with remote
// tasks on a fleet cluster, then checks every summary against the closed
// forms of a regular polygon.
//
//   geometry_driver --address=HOST:PORT   # workers run --task_lib=libgeometry_tasks.so
//   geometry_driver                       # an embedded local cluster in this process
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/fleet.h"
#include "geometry.h"

namespace {

using geometry::Point;
using geometry::PolygonSummary;

constexpr int kPolygons = 16;
constexpr double kTolerance = 1e-9;  // relative, or absolute near zero

struct Case {
  int sides;
  double radius;
  Point center;
};

bool Close(double got, double want) {
  return std::abs(got - want) <= kTolerance * std::max(1.0, std::abs(want));
}

// Returns an empty string when `s` is the summary of `c`, else what differs.
std::string Check(const Case& c, const PolygonSummary& s) {
  const double n = c.sides;
  const double area = n / 2 * c.radius * c.radius * std::sin(2 * std::numbers::pi / n);
  const double perimeter = 2 * n * c.radius * std::sin(std::numbers::pi / n);
  char buffer[256];
  if (s.vertices != c.sides) {
    std::snprintf(buffer, sizeof(buffer), "%d vertices, expected %d", s.vertices, c.sides);
  } else if (!Close(s.area, area)) {
    std::snprintf(buffer, sizeof(buffer), "area %.17g, expected %.17g", s.area, area);
  } else if (!Close(s.perimeter, perimeter)) {
    std::snprintf(buffer, sizeof(buffer), "perimeter %.17g, expected %.17g", s.perimeter,
                  perimeter);
  } else if (!Close(s.vertex_mean.x, c.center.x) || !Close(s.vertex_mean.y, c.center.y)) {
    std::snprintf(buffer, sizeof(buffer), "vertex mean (%.17g, %.17g), expected (%g, %g)",
                  s.vertex_mean.x, s.vertex_mean.y, c.center.x, c.center.y);
  } else {
    return "";
  }
  return buffer;
}

void PrintUsage(std::FILE* out) {
  std::fprintf(out,
               "usage: geometry_driver [--address=HOST:PORT]\n"
               "Summarizes %d regular polygons with remote tasks and checks the results.\n"
               "Without --address it starts an embedded local cluster.\n",
               kPolygons);
}

int Run() {
  std::vector<Case> cases;
  for (int k = 0; k < kPolygons; ++k) {
    cases.push_back({3 + k, 1 + 0.5 * k, {static_cast<double>(k), -2.0 * k}});
  }
  const auto make_polygon = fleet::Task(geometry::RegularPolygon);
  const auto summarize = fleet::Task(geometry::Summarize);

  const auto start = std::chrono::steady_clock::now();
  // Each polygon stays on the cluster: Summarize takes the ref, so the
  // vertices go from one task to the next without passing through here.
  std::vector<fleet::ObjectRef<std::vector<Point>>> polygons;
  std::vector<fleet::ObjectRef<PolygonSummary>> summaries;
  for (const Case& c : cases) {
    polygons.push_back(make_polygon.Remote(c.sides, c.radius, c.center));
    summaries.push_back(summarize.Remote(polygons.back()));
  }
  const std::vector<PolygonSummary> got = fleet::Get(summaries);
  const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;

  int failures = 0;
  for (int k = 0; k < kPolygons; ++k) {
    if (std::string problem = Check(cases[k], got[k]); !problem.empty()) {
      std::fprintf(stderr, "geometry_driver: polygon %d (%d sides): %s\n", k, cases[k].sides,
                   problem.c_str());
      ++failures;
    }
  }
  // An intermediate result can be fetched too.
  const std::vector<Point> last = polygons.back().Get();
  if (static_cast<int>(last.size()) != cases.back().sides) {
    std::fprintf(stderr, "geometry_driver: the last polygon has %zu vertices, expected %d\n",
                 last.size(), cases.back().sides);
    ++failures;
  }

  // A task that throws fails its ref; Get rethrows it as fleet::TaskError.
  bool failure_reported = false;
  try {
    summarize.Remote(std::vector<Point>{{0, 0}, {1, 1}}).Get();
  } catch (const fleet::TaskError& e) {
    failure_reported =
        std::string_view(e.what()).find("at least 3 vertices") != std::string_view::npos;
    if (!failure_reported) {
      std::fprintf(stderr, "geometry_driver: unexpected task error: %s\n", e.what());
    }
  }
  if (!failure_reported) {
    std::fprintf(stderr, "geometry_driver: Summarize of 2 points did not fail as expected\n");
    ++failures;
  }

  if (failures > 0) {
    std::fprintf(stderr, "geometry_driver: FAILED: %d wrong results\n", failures);
    return 1;
  }
  std::printf(
      "geometry_driver: %d polygons built and summarized by %d tasks in %.3f s; "
      "areas, perimeters and vertex means match; a failing task is reported\n",
      kPolygons, 2 * kPolygons, wall.count());
  std::printf("geometry_driver: OK\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  fleet::InitOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--address=")) {
      options.address = arg.substr(std::string_view("--address=").size());
    } else if (arg == "--address" && i + 1 < argc) {
      options.address = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      PrintUsage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "geometry_driver: unknown argument %s\n", argv[i]);
      PrintUsage(stderr);
      return 2;
    }
  }
  try {
    fleet::Init(options);
    const int status = Run();
    fleet::Shutdown();
    return status;
  } catch (const fleet::Error& e) {
    std::fprintf(stderr, "geometry_driver: FAILED: %s\n", e.what());
    return 1;
  }
}
