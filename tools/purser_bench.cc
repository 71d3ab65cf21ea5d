// purser-bench: load generation and capacity planning (bench/bench_main.h).
#include "bench/bench_main.h"

int main(int argc, char** argv) { return purser::bench::BenchMain(argc, argv); }
