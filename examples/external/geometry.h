// Remote functions over a user-defined type: the task code of the external
// example. Both the driver (which links libgeometry_tasks.so) and the
// workers (which load it with --task_lib) include this header.
#ifndef GEOMETRY_GEOMETRY_H_
#define GEOMETRY_GEOMETRY_H_

#include <vector>

#include "fleet/fleet.h"

namespace geometry {

// A user struct travels as a msgpack array of its fields: MSGPACK_DEFINE is
// all fleet needs to pass it to and from remote functions.
struct Point {
  double x = 0;
  double y = 0;
  MSGPACK_DEFINE(x, y);
};

struct PolygonSummary {
  double area = 0;  // by the shoelace formula
  double perimeter = 0;
  Point vertex_mean;  // the mean of the vertices
  int vertices = 0;
  MSGPACK_DEFINE(area, perimeter, vertex_mean, vertices);
};

// The `sides` vertices of a regular polygon with circumradius `radius`
// around `center`, counter-clockwise from angle 0. Throws
// std::invalid_argument when sides < 3 or radius <= 0.
std::vector<Point> RegularPolygon(int sides, double radius, Point center);

// Area, perimeter and vertex mean of a simple polygon given by its vertices
// in counter-clockwise order. Throws std::invalid_argument for fewer than 3
// vertices.
PolygonSummary Summarize(std::vector<Point> polygon);

}  // namespace geometry

#endif  // GEOMETRY_GEOMETRY_H_
