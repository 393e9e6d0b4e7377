#include "fleet/errors.h"

#include <utility>

namespace fleet {
namespace {

std::string Describe(const TaskError::Details& d) {
  std::string text = d.function_name.empty() ? "task" : d.function_name;
  if (!d.task_id.empty()) text += " (task " + d.task_id + ")";
  text += " failed";
  if (!d.worker.empty()) text += " on " + d.worker;
  if (d.attempt > 0) text += ", attempt " + std::to_string(d.attempt);
  text += ": ";
  if (!d.exception_type.empty()) text += d.exception_type + ": ";
  text += d.message;
  if (d.cause != nullptr) text += "\n  caused by: " + std::string(d.cause->what());
  return text;
}

}  // namespace

TaskError::TaskError(Details details) : Error(Describe(details)), details_(std::move(details)) {}

}  // namespace fleet
