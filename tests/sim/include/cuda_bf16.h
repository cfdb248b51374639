/* cuda_sim stand-in: everything is in tests/sim/cuda_sim.h (included first). */
#include "../cuda_sim.h"
