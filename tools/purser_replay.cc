// purser-replay: verify, rebuild and export a Purser log (replay/replay.h).
#include "replay/replay.h"

// jemalloc reads this at startup. A replay builds millions of records in
// memory that it never frees until it ends: on 4 KiB pages, every one of
// them costs page faults (11% of a rebuild's profile). Transparent huge
// pages for its arenas and metadata made rebuild 1.2-1.35x faster, for ~5%
// more resident memory (bench/RESULTS.md). MALLOC_CONF still overrides it.
extern "C" {
const char* malloc_conf = "thp:always,metadata_thp:always";
}

int main(int argc, char** argv) { return purser::ReplayMain(argc, argv); }
