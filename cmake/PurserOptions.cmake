# Build options and the warnings target. Warnings are an INTERFACE target so
# that -Werror is a CI decision (PURSER_WERROR), not hard-coded.
option(PURSER_BUILD_TESTS "Build the GoogleTest suite" ON)
option(PURSER_BUILD_BENCH "Build the Google Benchmark micro benches" ON)
option(PURSER_WERROR "Treat warnings as errors" OFF)
option(PURSER_BUILD_FUZZ "Build the libFuzzer targets (clang)" OFF)
set(PURSER_SANITIZE "" CACHE STRING "Sanitizers: '', 'address,undefined' or 'thread'")

find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_C_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()

add_library(purser_warnings INTERFACE)
target_compile_options(purser_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wconversion -Wno-sign-conversion)
if(PURSER_WERROR)
  target_compile_options(purser_warnings INTERFACE -Werror)
endif()

if(PURSER_SANITIZE)
  add_compile_options(-fsanitize=${PURSER_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${PURSER_SANITIZE})
  if(PURSER_SANITIZE MATCHES "thread")
    # Boost.Asio's std_fenced_block uses atomic_thread_fence, which TSan does
    # not model; its handlers are ordered by the scheduler's mutex as well,
    # so the fence hides nothing from TSan. The warning repeats ~370 times.
    add_compile_options(-Wno-tsan)
  endif()
endif()

# Assertions stay on in release builds of the core (STYLE.md): PURSER_ASSERT
# does not depend on NDEBUG, so release flags may define it freely.
