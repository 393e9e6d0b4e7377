// A driver that submits work and is then killed, for the client-death test:
//   fleet_abandoning_client SCHEDULER_ADDRESS TASKS SLEEP_MS
// submits TASKS SleepMs(SLEEP_MS) tasks, prints "submitted" and waits to be
// killed.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fleet/fleet.h"
#include "tests/integration/test_tasks.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s SCHEDULER_ADDRESS TASKS SLEEP_MS\n", argv[0]);
    return 2;
  }
  fleet::Init({.address = argv[1]});
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < std::atoi(argv[2]); ++i) {
    refs.push_back(fleet::Task(fleet_it::SleepMs).Remote(std::atoi(argv[3])));
  }
  std::printf("submitted\n");
  std::fflush(stdout);
  while (true) pause();
}
