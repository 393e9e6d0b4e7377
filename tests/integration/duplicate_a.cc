// One of two task libraries that both register `Duplicated`, so that a worker
// loading both must refuse to start (duplicate_library_test.cc).
#include "fleet/remote.h"

int Duplicated(int x) { return x + 1; }
FLEET_REMOTE(Duplicated);
