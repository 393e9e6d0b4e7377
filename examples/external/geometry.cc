#include "geometry.h"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace geometry {

std::vector<Point> RegularPolygon(int sides, double radius, Point center) {
  if (sides < 3 || !(radius > 0)) {
    throw std::invalid_argument("RegularPolygon: need sides >= 3 and radius > 0, got sides=" +
                                std::to_string(sides) + " radius=" + std::to_string(radius));
  }
  std::vector<Point> vertices;
  vertices.reserve(sides);
  for (int k = 0; k < sides; ++k) {
    const double angle = 2 * std::numbers::pi * k / sides;
    vertices.push_back({center.x + radius * std::cos(angle), center.y + radius * std::sin(angle)});
  }
  return vertices;
}
FLEET_REMOTE(RegularPolygon);

PolygonSummary Summarize(std::vector<Point> polygon) {
  if (polygon.size() < 3) {
    throw std::invalid_argument("Summarize: a polygon needs at least 3 vertices, got " +
                                std::to_string(polygon.size()));
  }
  PolygonSummary summary;
  summary.vertices = static_cast<int>(polygon.size());
  double twice_area = 0;
  for (std::size_t i = 0; i < polygon.size(); ++i) {
    const Point& a = polygon[i];
    const Point& b = polygon[(i + 1) % polygon.size()];
    twice_area += a.x * b.y - b.x * a.y;
    summary.perimeter += std::hypot(b.x - a.x, b.y - a.y);
    summary.vertex_mean.x += a.x;
    summary.vertex_mean.y += a.y;
  }
  summary.area = twice_area / 2;
  summary.vertex_mean.x /= static_cast<double>(polygon.size());
  summary.vertex_mean.y /= static_cast<double>(polygon.size());
  return summary;
}
FLEET_REMOTE(Summarize);

}  // namespace geometry
