# MOE_KERNELS_ONLY (included from CMakeLists.txt, which returns after it):
# the numeric core, the CUDA backend, the GPU tests and the GPU benchmark.
# Dependencies: OpenMP, OpenBLAS (cblas.h), cJSON and cmocka, looked up first under
# MOE_DEPS_PREFIX (Debian's .debs unpacked by scripts/gpu/check.sh).
if(NOT MOE_HAVE_CUDA)
  message(FATAL_ERROR "MOE_KERNELS_ONLY needs the CUDA backend (nvcc not found)")
endif()
set(MOE_DEPS_PREFIX "" CACHE PATH "root of unpacked .debs with OpenBLAS and cmocka")
set(_multiarch lib/x86_64-linux-gnu)
set(_hints ${MOE_DEPS_PREFIX}/usr/${_multiarch}/openblas-openmp ${MOE_DEPS_PREFIX}/usr/${_multiarch})
find_package(OpenMP REQUIRED)
find_package(Threads REQUIRED)
find_library(OPENBLAS_LIB NAMES openblas HINTS ${_hints} REQUIRED)
find_path(CBLAS_INCLUDE_DIR cblas.h
  HINTS ${MOE_DEPS_PREFIX}/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp
        ${MOE_DEPS_PREFIX}/usr/include/x86_64-linux-gnu/openblas-openmp
  PATH_SUFFIXES openblas-openmp openblas REQUIRED)
find_library(CMOCKA_LIB NAMES cmocka HINTS ${_hints} REQUIRED)
# cJSON: the config parser (the GPU model's test builds models from config keys)
find_library(CJSON_LIB NAMES cjson HINTS ${_hints} REQUIRED)
find_path(CJSON_INCLUDE_DIR cjson/cJSON.h HINTS ${MOE_DEPS_PREFIX}/usr/include REQUIRED)
find_path(CMOCKA_INCLUDE_DIR cmocka.h HINTS ${MOE_DEPS_PREFIX}/usr/include REQUIRED)
# OpenBLAS from the .debs needs its own libgfortran next to it at run time.
set(CMAKE_BUILD_RPATH ${_hints})
message(STATUS "kernels only: OpenBLAS ${OPENBLAS_LIB}, cmocka ${CMOCKA_LIB}")

add_compile_options($<$<COMPILE_LANGUAGE:C>:-Wall> $<$<COMPILE_LANGUAGE:C>:-Wextra>
                    $<$<COMPILE_LANGUAGE:C>:-D_DEFAULT_SOURCE>
                    $<$<COMPILE_LANGUAGE:C>:-fno-math-errno>)
# the numeric core, the model families, and the optimizers (for the GPU
# model's tests against the CPU): none of them needs more than OpenBLAS
file(GLOB MOE_KERNEL_SOURCES CONFIGURE_DEPENDS
  src/core/*.c src/ops/cpu/*.c src/nn/*.c src/nn/moe/*.c src/models/*.c)
file(GLOB MOE_CONFIG_SOURCES CONFIGURE_DEPENDS src/train/config*.c)
list(APPEND MOE_KERNEL_SOURCES src/train/optim.c src/train/clip.c src/train/schedule.c
     ${MOE_CONFIG_SOURCES} src/io/jsonutil.c src/io/fsutil.c)
include(cmake/cuda_backend.cmake)
add_library(moe_static STATIC ${MOE_KERNEL_SOURCES} $<TARGET_OBJECTS:moe_cuda_objects>)
target_include_directories(moe_static PUBLIC include ${CBLAS_INCLUDE_DIR} ${CJSON_INCLUDE_DIR}
                           PRIVATE src)
target_compile_definitions(moe_static PUBLIC MOE_HAVE_CUDA=1)
target_link_libraries(moe_static PUBLIC ${OPENBLAS_LIB} ${CJSON_LIB} OpenMP::OpenMP_C Threads::Threads m
                      CUDA::cudart CUDA::cublas CUDA::cublasLt)

add_library(moe_test_support STATIC tests/support/gradcheck.c tests/support/ref_data.c)
target_include_directories(moe_test_support PUBLIC tests/support src ${CMOCKA_INCLUDE_DIR})
target_link_libraries(moe_test_support PUBLIC moe_static ${CMOCKA_LIB})

enable_testing()
file(GLOB CUDA_TESTS CONFIGURE_DEPENDS tests/test_cuda_*.c)
foreach(src ${CUDA_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE moe_test_support)
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS cuda
                       ENVIRONMENT "OMP_NUM_THREADS=8")
endforeach()
file(GLOB GPU_BENCH CONFIGURE_DEPENDS bench/*_gpu.c)
foreach(src ${GPU_BENCH})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE src)
  target_link_libraries(${name} PRIVATE moe_static)
endforeach()
