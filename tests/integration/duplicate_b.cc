// The other library registering `Duplicated` (see duplicate_a.cc).
#include "fleet/remote.h"

int Duplicated(int x) { return x + 2; }
FLEET_REMOTE(Duplicated);
