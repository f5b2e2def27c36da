/* clock: the loop's held clock (clock.h). */
#include "base/clock.h"

_Thread_local uint64_t clock_held_ns;
