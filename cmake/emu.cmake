# EMULATED CUDA (tests/emu/cuda_emu.c): the CUDA backend's C orchestration
# code (src/nn/moe/cuda, src/models/cuda) linked against a host emulation of
# every launcher of src/ops/cuda/cuda_ops.h instead of the .cu kernels, so
# that machines without a GPU (CI) execute it against the CPU reference.
# What passes here is the composition logic, NOT the CUDA kernels: every
# target and test is named emu_* / moe_emu* and labelled emu.
#
# Included from CMakeLists.txt after the CUDA test registration (it reads
# MOE_NUMERIC_SOURCES, MOE_OTHER_SOURCES, MOE_EMBEDDED_SOURCES, MOE_DEPS,
# CSV_INCLUDE_DIR and PkgConfig::CMOCKA from there). It needs neither nvcc
# nor the CUDA libraries, so it also works in builds without the backend
# (MOE_CUDA=OFF) and with MOE_SANITIZE, where ASan/UBSan then watch the
# backend's host code.

# The library's dependencies without the CUDA libraries: nothing here may
# reach the CUDA runtime.
set(MOE_EMU_DEPS ${MOE_DEPS})
list(FILTER MOE_EMU_DEPS EXCLUDE REGEX "^CUDA::")

file(GLOB MOE_EMU_CUDA_C_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/ops/cuda/*.c
  ${CMAKE_SOURCE_DIR}/src/nn/moe/cuda/*.c ${CMAKE_SOURCE_DIR}/src/models/cuda/*.c)
add_library(moe_emu STATIC ${MOE_NUMERIC_SOURCES} ${MOE_OTHER_SOURCES} ${MOE_EMBEDDED_SOURCES}
            ${MOE_EMU_CUDA_C_SOURCES} ${CMAKE_SOURCE_DIR}/tests/emu/cuda_emu.c)
target_compile_definitions(moe_emu PUBLIC MOE_HAVE_CUDA=1 MOE_CUDA_EMULATED=1)
target_include_directories(moe_emu PUBLIC ${CMAKE_SOURCE_DIR}/include
                           PRIVATE ${CMAKE_SOURCE_DIR}/src ${CSV_INCLUDE_DIR})
target_link_libraries(moe_emu PUBLIC ${MOE_EMU_DEPS})
# `moe devices` names the architectures from MOE_CUDA_ARCH (a property of
# src/core/device.c set in CMakeLists.txt): "emulated" here. Options come
# after the definitions on the command line, so these win.
target_compile_options(moe_emu PRIVATE -UMOE_CUDA_ARCH [=[-DMOE_CUDA_ARCH="emulated"]=])

file(GLOB MOE_EMU_SUPPORT CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/support/*.c)
add_library(moe_emu_test_support STATIC ${MOE_EMU_SUPPORT})
target_include_directories(moe_emu_test_support PUBLIC ${CMAKE_SOURCE_DIR}/tests/support
                           ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(moe_emu_test_support PUBLIC moe_emu PkgConfig::CMOCKA)

# GPU tests that exercise orchestration code. Not the op-level tests
# (test_cuda_dense, test_cuda_gemm, test_cuda_moe_ops): against the emulation
# they would compare the CPU reference with itself.
set(EMU_TESTS test_cuda_moe_layer)
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/test_cuda_model.c)
  list(APPEND EMU_TESTS test_cuda_model)
endif()
foreach(name ${EMU_TESTS})
  add_executable(emu_${name} ${CMAKE_SOURCE_DIR}/tests/${name}.c)
  target_link_libraries(emu_${name} PRIVATE moe_emu_test_support)
  add_test(NAME emu_${name} COMMAND emu_${name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(emu_${name} PROPERTIES LABELS emu SKIP_RETURN_CODE 77 ENVIRONMENT
    "OMP_NUM_THREADS=2;MOE_BUILD_DIR=${CMAKE_BINARY_DIR};MOE_SOURCE_DIR=${CMAKE_SOURCE_DIR};MOE_TEST_SEED=20261123")
  # a fixed seed: CI must not depend on the draw (on a GPU the seed is fresh)
endforeach()

# The CLI on the emulation, for CLI tests of the --device cuda paths.
file(GLOB MOE_EMU_CLI_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/cli/*.c)
if(MOE_EMU_CLI_SOURCES)
  add_executable(moe_emu_cli ${MOE_EMU_CLI_SOURCES})
  set_target_properties(moe_emu_cli PROPERTIES OUTPUT_NAME moe-emu)
  target_include_directories(moe_emu_cli PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(moe_emu_cli PRIVATE moe_emu)
endif()
