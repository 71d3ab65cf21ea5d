# Every dependency comes from a Debian 12 package (scripts/setup installs them).
# How each is found is recorded in ../shared/PLATFORM.md.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(CapnProto CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(Boost 1.74 CONFIG REQUIRED)
find_package(simdjson CONFIG REQUIRED)
find_package(absl CONFIG REQUIRED)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
# The NATS C client (libnats-dev 3.4): JetStream and key-value, for the
# replicated log of cluster mode (cluster/). By pkg-config: Debian's CMake
# config names a libnats_static.a that the package does not ship.
pkg_check_modules(NATS REQUIRED IMPORTED_TARGET libnats)
# jemalloc for the long-running binaries: +21% durable pairs/s over glibc malloc
# in purser-bench inproc (bench/RESULTS.md), from cross-thread frees.
pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)
if(PURSER_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(PURSER_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()
