# cuda_sim: copies a .cu file (IN) to a C++ file (OUT) for the host
# compiler, registering each __shared__ array with the simulator so that it
# is poisoned before every block: `__shared__ T a[N], b[M];` becomes
# `static T a[N], b[M]; MOE_SIM_SHARED(a); MOE_SIM_SHARED(b);` on the same
# line (line numbers stay those of the .cu file). One or two arrays per
# declaration; a declaration the patterns miss stays __shared__ (static,
# not poisoned) and the scan below fails the build instead.
file(READ ${IN} src)
set(id "[A-Za-z_][A-Za-z0-9_]*")
set(dims "(\\[[^];\n]*\\])+")
string(REGEX REPLACE
  "__shared__([^;\n]*[ \t](${id})[ \t]*${dims}[ \t]*,[ \t]*(${id})[ \t]*${dims}[ \t]*;)"
  "static\\1 MOE_SIM_SHARED(\\2); MOE_SIM_SHARED(\\4);" src "${src}")
string(REGEX REPLACE "__shared__([^;\n]*[ \t](${id})[ \t]*${dims}[ \t]*;)"
  "static\\1 MOE_SIM_SHARED(\\2);" src "${src}")
string(REGEX MATCH "[^\n]*__shared__[^\n]*" left "${src}")
if(left AND NOT left MATCHES "^[ \t]*(/?\\*|//)")
  message(FATAL_ERROR "cuda_sim: ${IN}: a __shared__ declaration not rewritten: ${left}")
endif()
file(WRITE ${OUT}.tmp "${src}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
