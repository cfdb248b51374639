# The CUDA backend's object library (src/ops/cuda, src/nn/moe/cuda,
# src/models/cuda), shared
# by the full build and MOE_KERNELS_ONLY.
file(GLOB MOE_CUDA_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_SOURCE_DIR}/src/ops/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/ops/cuda/*.c
  ${CMAKE_SOURCE_DIR}/src/nn/moe/cuda/*.c
  ${CMAKE_SOURCE_DIR}/src/nn/moe/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/models/cuda/*.c)
add_library(moe_cuda_objects OBJECT ${MOE_CUDA_SOURCES})
target_include_directories(moe_cuda_objects PRIVATE ${CMAKE_SOURCE_DIR}/include
                           ${CMAKE_SOURCE_DIR}/src)
# -lineinfo: compute-sanitizer and ncu name source lines; costs no speed.
target_compile_options(moe_cuda_objects PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall,-Wextra -lineinfo>
  $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -D_DEFAULT_SOURCE>)
target_compile_definitions(moe_cuda_objects PUBLIC MOE_HAVE_CUDA=1)
target_link_libraries(moe_cuda_objects PUBLIC CUDA::cudart CUDA::cublas CUDA::cublasLt)
