// purser-bench: load generation and capacity planning (see kUsage in
// bench_main.cc). tools/purser_bench.cc is its two-line main().
#pragma once

namespace purser::bench {

int BenchMain(int argc, char** argv);

}  // namespace purser::bench
