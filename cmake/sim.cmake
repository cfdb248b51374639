# SIMULATED CUDA (tests/sim/): the REAL kernels of src/ops/cuda/*.cu,
# compiled as C++ by the host compiler against tests/sim/cuda_sim.h, which
# runs every thread of a block as a host fiber (barriers, warp shuffles,
# votes, shared memory, wmma) and stands in for the CUDA runtime and cuBLAS.
# The GPU tests (tests/test_cuda_*.c) then execute the kernels against the
# CPU reference on machines without a GPU: targets and tests sim_*, label sim.
# What the simulator does not model (timing, the memory model of concurrent
# threads, the GPU's expf/erff and FMA rounding): tests/sim/cuda_sim.h.
#
# Included from CMakeLists.txt after cmake/emu.cmake (it reuses MOE_EMU_DEPS,
# MOE_EMU_CUDA_C_SOURCES and the sources lists from there). It needs neither
# nvcc nor the CUDA libraries (works with MOE_SANITIZE too).
enable_language(CXX)

# Each .cu becomes a .cpp in the build tree with its __shared__ arrays
# registered for poisoning (tests/sim/rewrite.cmake; same line numbers).
file(GLOB MOE_SIM_CU CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/ops/cuda/*.cu)
set(MOE_SIM_CU_CPP "")
foreach(cu ${MOE_SIM_CU})
  get_filename_component(base ${cu} NAME_WE)
  set(out ${CMAKE_BINARY_DIR}/sim/${base}.cpp)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${cu} -DOUT=${out} -P ${CMAKE_SOURCE_DIR}/tests/sim/rewrite.cmake
    DEPENDS ${cu} ${CMAKE_SOURCE_DIR}/tests/sim/rewrite.cmake
    COMMENT "cuda_sim: ${base}.cu as C++" VERBATIM)
  list(APPEND MOE_SIM_CU_CPP ${out})
endforeach()

add_library(moe_sim_kernels OBJECT ${MOE_SIM_CU_CPP} ${CMAKE_SOURCE_DIR}/tests/sim/cuda_sim.cpp)
target_include_directories(moe_sim_kernels PRIVATE ${CMAKE_SOURCE_DIR}/tests/sim/include
                           ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
target_compile_definitions(moe_sim_kernels PRIVATE MOE_CUDA_SIM=1)
set_target_properties(moe_sim_kernels PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON
                      CXX_EXTENSIONS OFF)
# -O2 whatever the build type: the simulated kernels are the tests' hot loop.
# No FMA contraction, so __fmul_rn / __fadd_rn and plain a*b+c stay apart.
target_compile_options(moe_sim_kernels PRIVATE -O2 -ffp-contract=off -Wno-unknown-pragmas
                       -include ${CMAKE_SOURCE_DIR}/tests/sim/cuda_sim.h)

add_library(moe_sim STATIC ${MOE_NUMERIC_SOURCES} ${MOE_OTHER_SOURCES} ${MOE_EMBEDDED_SOURCES}
            ${MOE_EMU_CUDA_C_SOURCES} $<TARGET_OBJECTS:moe_sim_kernels>)
target_compile_definitions(moe_sim PUBLIC MOE_HAVE_CUDA=1)
target_include_directories(moe_sim PUBLIC ${CMAKE_SOURCE_DIR}/include
                           PRIVATE ${CMAKE_SOURCE_DIR}/src ${CSV_INCLUDE_DIR})
target_link_libraries(moe_sim PUBLIC ${MOE_EMU_DEPS} Threads::Threads)
set_target_properties(moe_sim PROPERTIES LINKER_LANGUAGE CXX)
target_compile_options(moe_sim PRIVATE -UMOE_CUDA_ARCH [=[-DMOE_CUDA_ARCH="simulated"]=])

add_library(moe_sim_test_support STATIC ${MOE_EMU_SUPPORT})
target_include_directories(moe_sim_test_support PUBLIC ${CMAKE_SOURCE_DIR}/tests/support
                           ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(moe_sim_test_support PUBLIC moe_sim PkgConfig::CMOCKA)

# Every GPU test, on the simulated device.
file(GLOB MOE_SIM_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_cuda_*.c)
foreach(src ${MOE_SIM_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(sim_${name} ${src})
  target_link_libraries(sim_${name} PRIVATE moe_sim_test_support)
  set_target_properties(sim_${name} PROPERTIES LINKER_LANGUAGE CXX)
  add_test(NAME sim_${name} COMMAND sim_${name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(sim_${name} PROPERTIES LABELS sim SKIP_RETURN_CODE 77 TIMEOUT 900
    ENVIRONMENT
    "OMP_NUM_THREADS=2;MOE_BUILD_DIR=${CMAKE_BINARY_DIR};MOE_SOURCE_DIR=${CMAKE_SOURCE_DIR};MOE_TEST_SEED=20261123;MOE_CUDA_SIM=1")
endforeach()
